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

# MathGL core (libs/plot): its own CMake package drags in every GUI backend.
find_library(EMT_MGL_LIBRARY NAMES mgl)
if(EMT_MGL_LIBRARY AND NOT TARGET emtriplet_sys::mathgl)
  add_library(emtriplet_sys::mathgl UNKNOWN IMPORTED)
  set_target_properties(emtriplet_sys::mathgl PROPERTIES IMPORTED_LOCATION "${EMT_MGL_LIBRARY}")
elseif(NOT EMT_MGL_LIBRARY)
  list(APPEND EMT_SYSTEM_LIBRARIES_MISSING "MathGL (libmgl)")
endif()

# Gloo (libs/ssan's data-parallel trainer): LibTorch links the same libgloo.
if(emtriplet_WITH_TORCH)
  find_library(EMT_GLOO_LIBRARY gloo)
  if(EMT_GLOO_LIBRARY AND NOT TARGET emtriplet_sys::gloo)
    add_library(emtriplet_sys::gloo UNKNOWN IMPORTED)
    set_target_properties(emtriplet_sys::gloo PROPERTIES IMPORTED_LOCATION "${EMT_GLOO_LIBRARY}")
  elseif(NOT EMT_GLOO_LIBRARY)
    list(APPEND EMT_SYSTEM_LIBRARIES_MISSING "Gloo (libgloo)")
  endif()
endif()
