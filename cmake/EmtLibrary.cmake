# emt_add_library(NAME SOURCES ... ) : declares emt_<NAME> with the layout every
# lib follows (include/ public headers, installed and exported as emtriplet::<NAME>).
function(emt_add_library name)
  add_library(emt_${name} ${ARGN})
  add_library(emtriplet::${name} ALIAS emt_${name})
  set_target_properties(emt_${name} PROPERTIES EXPORT_NAME ${name} OUTPUT_NAME emt_${name})
  target_include_directories(emt_${name} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(emt_${name} PRIVATE $<BUILD_INTERFACE:emt_warnings>)  # our warnings, not the user's
  install(TARGETS emt_${name} EXPORT emtripletTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()
