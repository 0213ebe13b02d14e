#!/usr/bin/env python3
"""Archive helpers of scripts/install-node.sh and scripts/install-go.sh (Python's standard library
only: python3 is there on every machine the scripts run on, unzip may not be).

  toolchain_archive.py sha256 FILE               the file's sha256 (hex)
  toolchain_archive.py gosum ZIP                 the Go checksum database's h1: hash of a module zip
  toolchain_archive.py unpack ZIP PREFIX DEST    the entries under PREFIX, into DEST (PREFIX removed)

gosum is golang.org/x/mod/sumdb/dirhash.HashZip (Hash1): SHA-256 over the lines
"<sha256 hex of the file>  <name>\\n" of every file, sorted by name, base64-encoded. A module
zip is checked against it exactly as `go` checks what it downloads.

unpack keeps the mode bits a zip records (wheels record them; Go module zips do not, so
install-go.sh marks the toolchain's binaries executable itself) and refuses names that would leave
DEST.
"""
import base64
import hashlib
import os
import shutil
import sys
import zipfile


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gosum(path):
    summary = hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        names = sorted(i.filename for i in z.infolist() if not i.is_dir())
        for name in names:
            if "\n" in name:
                raise SystemExit(f"gosum: file name with a newline in {path}")
            h = hashlib.sha256()
            with z.open(name) as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            summary.update(f"{h.hexdigest()}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def unpack(path, prefix, dest):
    dest = os.path.realpath(dest)
    count = 0
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.startswith(prefix) or info.is_dir():
                continue
            target = os.path.realpath(os.path.join(dest, info.filename[len(prefix):]))
            if not target.startswith(dest + os.sep):
                raise SystemExit(f"unpack: {info.filename} would leave {dest}")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, mode if mode else 0o644)
            count += 1
    if count == 0:
        raise SystemExit(f"unpack: nothing under {prefix} in {path}")


def main(argv):
    if len(argv) == 3 and argv[1] == "sha256":
        print(sha256_file(argv[2]))
    elif len(argv) == 3 and argv[1] == "gosum":
        print(gosum(argv[2]))
    elif len(argv) == 5 and argv[1] == "unpack":
        unpack(argv[2], argv[3], argv[4])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
