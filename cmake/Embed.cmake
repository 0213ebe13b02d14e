# revtrace_embed(<target> <file> <namespace> <symbol>): compiles the bytes of <file> into <target>
# as `std::string_view <namespace>::<symbol>()`, regenerated whenever the file changes.
set(REVTRACE_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/embed_file.cmake)

function(revtrace_embed target input namespace symbol)
  get_filename_component(name "${input}" NAME)
  set(output "${CMAKE_CURRENT_BINARY_DIR}/embedded_${symbol}.cpp")
  add_custom_command(
    OUTPUT "${output}"
    COMMAND ${CMAKE_COMMAND} -DINPUT=${input} -DOUTPUT=${output} -DNAMESPACE=${namespace}
            -DSYMBOL=${symbol} -P ${REVTRACE_EMBED_SCRIPT}
    DEPENDS "${input}" ${REVTRACE_EMBED_SCRIPT}
    COMMENT "Embedding ${name}"
    VERBATIM)
  target_sources(${target} PRIVATE "${output}")
endfunction()
