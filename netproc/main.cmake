# tailwarden-netproc: the sandboxed magicsock process.
if(NOT TW_FUZZ)
  add_library(tw_netproc_app STATIC ${CMAKE_CURRENT_LIST_DIR}/app.cc ${CMAKE_CURRENT_LIST_DIR}/derp_link.cc)
  target_link_libraries(tw_netproc_app PUBLIC tw_magicsock_runtime tw_derp tw_ipc tw_common Boost::headers)
  add_executable(tailwarden-netproc ${CMAKE_CURRENT_LIST_DIR}/main.cc)
  target_link_libraries(tailwarden-netproc PRIVATE tw_netproc_app tw_child_sandbox)
  set_target_properties(tailwarden-netproc PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
endif()
if(NOT TW_FUZZ AND "broker" IN_LIST TW_AREAS)
  tw_test(NAME netproc_process_test
    SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/netproc/process_test.cc
    LIBS tw_magicsock_runtime tw_broker_sys TIMEOUT 60)
  target_compile_definitions(netproc_process_test PRIVATE TW_NETPROC_BIN="$<TARGET_FILE:tailwarden-netproc>")
  add_dependencies(netproc_process_test tailwarden-netproc)
endif()
