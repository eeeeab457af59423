# Libraries without a CMake package of their own, as imported targets named
# the same in this build and in a downstream project: the top-level
# CMakeLists.txt and the installed emtripletConfig.cmake both include this
# file, so the exported targets link these names instead of absolute paths.
# Expects emtriplet_WITH_TORCH (Gloo only with LibTorch); lists what it could not find in
# EMT_SYSTEM_LIBRARIES_MISSING (the caller decides how to fail).
set(EMT_SYSTEM_LIBRARIES_MISSING "")

# Chunk codecs (libs/emio) through pkg-config.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(EMT_CODECS QUIET IMPORTED_TARGET blosc libzstd zlib liblzma)
endif()
if(NOT TARGET PkgConfig::EMT_CODECS)
  list(APPEND EMT_SYSTEM_LIBRARIES_MISSING "pkg-config modules blosc libzstd zlib liblzma")
endif()

# A library found by name as the imported target TARGET (once per project).
macro(_emt_system_library target name what)
  string(TOUPPER "EMT_${name}_LIBRARY" _emt_var)  # EMT_MGL_LIBRARY, EMT_GLOO_LIBRARY: set them to override
  find_library(${_emt_var} NAMES ${name})
  if(NOT ${_emt_var})
    list(APPEND EMT_SYSTEM_LIBRARIES_MISSING "${what}")
  elseif(NOT TARGET ${target})
    add_library(${target} UNKNOWN IMPORTED)
    set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${${_emt_var}}")
  endif()
endmacro()

# MathGL core (libs/plot): its own CMake package drags in every GUI backend.
_emt_system_library(emtriplet_sys::mathgl mgl "MathGL (libmgl)")
# Gloo (libs/ssan's data-parallel trainer): LibTorch links the same libgloo.
if(emtriplet_WITH_TORCH)
  _emt_system_library(emtriplet_sys::gloo gloo "Gloo (libgloo)")
endif()
