#!/usr/bin/env python3
"""Assembles bench/run.sh's measurements into report.json and a text report, checked against the
performance bar (PERFORMANCE.md). Prints the text report; exits 0 whatever the bar says (a
benchmark reports, it does not judge a build)."""
import argparse
import json
import re
import time

GIB = 1024 ** 3


def parse(text):
    try:
        return json.loads(text) if text and text.strip() else {}
    except json.JSONDecodeError:
        return {"unparsed": text}


def main():
    ap = argparse.ArgumentParser()
    for name in ["out", "smoke", "machine", "load-a", "raw-a", "proc-a", "compact-a", "state-bytes-a",
                 "load-b", "raw-b", "replay-wait", "replay-done", "e2e", "gateway"]:
        ap.add_argument("--" + name, default="")
    a = ap.parse_args()
    smoke = a.smoke == "1"
    machine = parse(a.machine)
    load_a, raw_a, proc_a = parse(a.load_a), parse(a.raw_a), parse(a.proc_a)
    load_b, raw_b, replay_wait = parse(a.load_b), parse(a.raw_b), parse(a.replay_wait)
    e2e, gateway = parse(a.e2e), parse(a.gateway)
    state_bytes = int(a.state_bytes_a or 0)

    visitors = load_a.get("visitors", 0)
    raw_rate = raw_a.get("records_per_s", 0)
    proc_rate = proc_a.get("records_per_s", 0)
    ratio = proc_rate / raw_rate if raw_rate else None
    rss_kb = proc_a.get("vm_hwm_kb", 0)
    per_million = 1e6 / visitors if visitors else 0
    rss_per_million = rss_kb * 1024 * per_million
    disk_per_visitor = state_bytes / visitors if visitors else None

    m = re.search(r"done: (\d+) records in ([0-9.e+]+) s", a.replay_done or "")
    rebuild_records = int(m.group(1)) if m else replay_wait.get("records")
    rebuild_s = float(m.group(2)) if m else replay_wait.get("seconds")
    replay_rate = (rebuild_records / rebuild_s) if rebuild_records and rebuild_s else None
    raw_b_rate = raw_b.get("records_per_s")
    ten_million_s = (1e7 / replay_rate) if replay_rate else None

    gw_ratio = gateway.get("ratio") if isinstance(gateway, dict) else None
    bar = {
        "replay_vs_raw_ratio_min": 0.6,
        "gateway_vs_nginx_ratio_min": 0.5,
        "e2e_p99_ms_max": 250,
        "rss_bytes_per_million_visitors_max": GIB,
        "disk_bytes_per_visitor_max": 200,
    }
    met = {
        "replay": ratio is not None and ratio >= 0.6,
        "gateway": None if gw_ratio is None else gw_ratio >= 0.5,
        "e2e": e2e.get("p99_ms", -1) >= 0 and e2e.get("p99_ms") < 250 and not e2e.get("missing"),
        "rss": rss_kb > 0 and rss_per_million < GIB,
        "disk": disk_per_visitor is not None and disk_per_visitor < 200,
    }
    report = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": "smoke" if smoke else "full",
        "machine": machine,
        "workload": {"state_set": load_a, "rebuild_appended": load_b},
        "replay": {"raw_consumer": raw_a, "processor": proc_a, "ratio": ratio},
        "gateway": gateway,
        "end_to_end": e2e,
        "state": {"visitors": visitors, "rss_hwm_bytes": rss_kb * 1024,
                  "rss_bytes_per_million_visitors": rss_per_million,
                  "disk_bytes": state_bytes, "disk_bytes_per_visitor": disk_per_visitor,
                  "rocksdb": parse(a.compact_a)},
        "rebuild": {"records": rebuild_records, "seconds": rebuild_s, "records_per_s": replay_rate,
                    "raw_consumer": raw_b,
                    "ratio": (replay_rate / raw_b_rate) if replay_rate and raw_b_rate else None,
                    "seconds_per_ten_million_records": ten_million_s,
                    "replay_process": replay_wait},
        "bar": bar,
        "bar_met": met,
    }
    with open(f"{a.out}/report.json", "w") as f:
        json.dump(report, f, indent=2)

    def ok(v):
        return "not measured" if v is None else ("MET" if v else "NOT MET")

    def num(v, fmt="{:,.0f}"):
        return "n/a" if v is None else fmt.format(v)

    lines = [
        f"revtrace benchmark ({report['mode']} mode) {report['generated_at']}",
        f"machine: {machine.get('nproc')} cores, {machine.get('memory_bytes', 0) / GIB:.1f} GiB, "
        f"{machine.get('cpu')}, revision {machine.get('revision')}",
        f"workload: {visitors:,} visitors on {load_a.get('records', 0):,} records "
        f"({load_a.get('pageviews', 0):,} pageviews, {load_a.get('identifies', 0):,} identifies, "
        f"{load_a.get('redirects', 0):,} redirects, {load_a.get('payers', 0):,} payers, "
        f"{load_a.get('subscriptions', 0):,} subscriptions with {load_a.get('renewals', 0):,} renewals, "
        f"{load_a.get('refunds', 0):,} refunds, {load_a.get('duplicate_deliveries', 0):,} duplicate deliveries)",
        "",
        f"1. replay throughput: processor {num(proc_rate)} records/s "
        f"(steady {num(proc_a.get('steady_records_per_s'))}), raw consumer {num(raw_rate)} records/s, "
        f"ratio {num(ratio, '{:.2f}')} (bar >= 0.6: {ok(met['replay'])})",
        f"2. gateway vs nginx: " + (
            f"gateway {num(gateway.get('gateway_rps'))} req/s, nginx {num(gateway.get('nginx_rps'))} req/s, "
            f"ratio {num(gw_ratio, '{:.2f}')}, gateway p99 {num(gateway.get('gateway_p99_ms'), '{:.1f}')} ms "
            f"(bar >= 0.5: {ok(met['gateway'])})" if gw_ratio is not None else
            f"not measured ({gateway.get('reason', 'no figures')})"),
        f"3. end-to-end webhook 200 -> attributed revenue visible (read_committed): "
        f"p50 {num(e2e.get('p50_ms'), '{:.1f}')} ms, p99 {num(e2e.get('p99_ms'), '{:.1f}')} ms, "
        f"max {num(e2e.get('max_ms'), '{:.1f}')} ms over {e2e.get('acknowledged', 0)} webhooks "
        f"({e2e.get('missing', '?')} missing) at {num(e2e.get('background_events_per_s'))} pageviews/s "
        f"(bar p99 < 250 ms: {ok(met['e2e'])})",
        f"4. state cost at {visitors:,} visitors: RSS high-water {rss_kb / 1024:,.0f} MiB = "
        f"{rss_per_million / 2**20:,.0f} MiB per million visitors (bar < 1024: {ok(met['rss'])}); "
        f"disk {state_bytes / 2**20:,.1f} MiB = {num(disk_per_visitor, '{:.1f}')} bytes per visitor "
        f"(bar < 200: {ok(met['disk'])})",
        f"5. rebuild (revtrace replay) of {num(rebuild_records)} records: {num(rebuild_s, '{:.1f}')} s = "
        f"{num(replay_rate)} records/s (raw {num(raw_b_rate)}, ratio "
        f"{num(report['rebuild']['ratio'], '{:.2f}')}); ten million records: "
        f"{num(ten_million_s, '{:.0f}')} s" + ("" if (rebuild_records or 0) >= 1e7 else " (extrapolated)"),
    ]
    if smoke:
        lines.append("(smoke mode: small data, the figures do not speak for the bar)")
    text = "\n".join(lines) + "\n"
    with open(f"{a.out}/report.txt", "w") as f:
        f.write(text)
    print(text, end="")
    # The smoke run checks that every part produced figures (not that they meet the bar).
    if smoke:
        broken = [name for name, bad in [
            ("replay", ratio is None), ("state", not rss_kb or not state_bytes),
            ("rebuild", not replay_rate),
            ("end-to-end", e2e.get("p99_ms", -1) < 0 or e2e.get("missing") or e2e.get("failed"))] if bad]
        if broken:
            print("bench: smoke run produced no figures for: " + ", ".join(broken))
            raise SystemExit(1)


if __name__ == "__main__":
    main()
