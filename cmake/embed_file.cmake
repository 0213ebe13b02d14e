# cmake -DINPUT=<file> -DOUTPUT=<cpp> -DNAMESPACE=<ns> -DSYMBOL=<name> -P embed_file.cmake
# Writes a .cpp defining `std::string_view <ns>::<name>()` with the bytes of INPUT.
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
# Keep lines short for compilers and diffs.
string(REGEX REPLACE "((('\\\\x[0-9a-f][0-9a-f]',){24}))" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp" "// Generated from ${INPUT} by cmake/embed_file.cmake. Do not edit.\n#include <string_view>\nnamespace ${NAMESPACE} {\nnamespace {\nconstexpr char kBytes[] = {${bytes} '\\0'};\n}  // namespace\nstd::string_view ${SYMBOL}() { return {kBytes, ${size}}; }\n}  // namespace ${NAMESPACE}\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
