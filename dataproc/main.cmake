# tailwarden-dataproc: the sandboxed WireGuard dataplane process.
if(NOT TW_FUZZ)
  add_library(tw_dataproc_runtime STATIC ${CMAKE_CURRENT_LIST_DIR}/runtime.cc ${CMAKE_CURRENT_LIST_DIR}/tun_io.cc)
  target_link_libraries(tw_dataproc_runtime PUBLIC tw_wireguard tw_tun_offload tw_ipc tw_common Boost::headers)
  add_executable(tailwarden-dataproc ${CMAKE_CURRENT_LIST_DIR}/main.cc)
  target_link_libraries(tailwarden-dataproc PRIVATE tw_dataproc_runtime tw_child_sandbox)
  set_target_properties(tailwarden-dataproc PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
endif()
