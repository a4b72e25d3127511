# The kernel manifest (shaders/kernels.txt) -> SPIR-V per variant (validated by spirv-val,
# embedded as uint32_t arrays) + the C enum ${VKD_GEN_DIR}/vkd_kernels.h and the table
# ${VKD_SPV_OUT}/kernel_table.c (host/vk/kernel.h). Included by CMakeLists.txt after the
# KHR probe (VKD_CM_KHR_OK). Sets VKD_SPV_C_FILES and VKD_KERNEL_TABLE.
set(VKD_MANIFEST ${CMAKE_SOURCE_DIR}/shaders/kernels.txt)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${VKD_MANIFEST})
file(GLOB VKD_SHADER_INCLUDES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/shaders/*.glsl)
file(GLOB VKD_PUSH_HEADERS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/host/ops/push*.h)
set(VKD_SHADER_DEPS ${VKD_SHADER_INCLUDES} ${VKD_PUSH_HEADERS} ${VKD_MANIFEST})
set(VKD_SPV_OUT ${CMAKE_BINARY_DIR}/spv)
set(VKD_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${VKD_SPV_OUT} ${VKD_GEN_DIR})

set(VKD_KF_NAMES subgroup_basic subgroup_shuffle subgroup_ballot fp16_arith coopmat_nv coopmat_khr texel16)
set(VKD_SPV_C_FILES)
set(enum_body "")
set(decls "")
set(rows "")
set(names)
file(STRINGS ${VKD_MANIFEST} lines)
foreach(line IN LISTS lines)
  string(STRIP "${line}" line)
  if(line STREQUAL "" OR line MATCHES "^#")
    continue()
  endif()
  string(REGEX REPLACE "[ \t]+" ";" f "${line}")
  list(LENGTH f nf)
  if(NOT nf EQUAL 7)
    message(FATAL_ERROR "shaders/kernels.txt: want 7 columns (name source variants bindings texel features defines): ${line}")
  endif()
  list(GET f 0 name)
  list(GET f 1 source)
  list(GET f 2 variants)
  list(GET f 3 bindings)
  list(GET f 4 texel)
  list(GET f 5 features)
  list(GET f 6 defines)
  if(NOT name MATCHES "^[a-z][a-z0-9_]*$" OR name IN_LIST names)
    message(FATAL_ERROR "shaders/kernels.txt: bad or repeated kernel name '${name}'")
  endif()
  list(APPEND names ${name})
  set(src ${CMAKE_SOURCE_DIR}/shaders/${source})
  if(NOT EXISTS ${src})
    message(FATAL_ERROR "shaders/kernels.txt: ${name}: no shaders/${source}")
  endif()
  if(NOT bindings MATCHES "^[1-8]$")
    message(FATAL_ERROR "shaders/kernels.txt: ${name}: bindings must be 1..8 (got ${bindings})")
  endif()
  if(NOT texel MATCHES "^(0|0x[0-9a-fA-F]+)$")
    message(FATAL_ERROR "shaders/kernels.txt: ${name}: texel must be 0 or a hex mask (got ${texel})")
  endif()
  # features -> VKD_KF_* flags; a texel mask needs the 16-byte texel buffers
  set(flags "")
  set(feature_list "")
  if(NOT features STREQUAL "-")
    string(REPLACE "," ";" feature_list "${features}")
  endif()
  if(NOT texel STREQUAL "0")
    list(APPEND feature_list texel16)
  endif()
  foreach(ft IN LISTS feature_list)
    if(NOT ft IN_LIST VKD_KF_NAMES)
      message(FATAL_ERROR "shaders/kernels.txt: ${name}: unknown feature '${ft}' (known: ${VKD_KF_NAMES})")
    endif()
    string(TOUPPER ${ft} up)
    string(APPEND flags "VKD_KF_${up} | ")
  endforeach()
  string(APPEND flags "0u")
  set(defs "")
  if(NOT defines STREQUAL "-")
    string(REPLACE "," ";" dl "${defines}")
    foreach(dd IN LISTS dl)
      list(APPEND defs -D${dd})
    endforeach()
  endif()
  string(TOUPPER ${name} uname)
  string(APPEND enum_body "    VKD_KERNEL_${uname},\n")
  set(spv_ptr "NULL, NULL")
  set(size_ptr "NULL, NULL")
  set(built_f32 0)
  set(built_f16 0)
  string(REPLACE "," ";" vl "${variants}")
  foreach(variant IN LISTS vl)
    if(NOT variant MATCHES "^(f32|f16)$")
      message(FATAL_ERROR "shaders/kernels.txt: ${name}: unknown variant '${variant}' (f32, f16)")
    endif()
    # the KHR cooperative-matrix kernels need shader tools that know the extension
    if("coopmat_khr" IN_LIST feature_list AND NOT VKD_CM_KHR_OK)
      continue()
    endif()
    if(variant STREQUAL "f16")
      set(vdef -DVKD_F16=1)
    else()
      set(vdef -DVKD_F16=0)
    endif()
    set(vname ${name}_${variant})
    set(spv ${VKD_SPV_OUT}/${vname}.spv)
    set(cfile ${VKD_SPV_OUT}/${vname}.c)
    if(GLSLANG)
      set(compile ${GLSLANG} --target-env vulkan1.1 -V ${vdef} ${defs} -DVKD_GLSL=1
                  -I${CMAKE_SOURCE_DIR}/shaders -I${CMAKE_SOURCE_DIR}/host/ops -o ${spv} ${src})
    else()
      set(compile ${GLSLC} --target-env=vulkan1.1 ${vdef} ${defs} -DVKD_GLSL=1
                  -I${CMAKE_SOURCE_DIR}/shaders -I${CMAKE_SOURCE_DIR}/host/ops -o ${spv} ${src})
    endif()
    add_custom_command(
      OUTPUT ${cfile}
      COMMAND ${compile}
      COMMAND ${SPIRV_VAL} --target-env vulkan1.1 ${spv}
      COMMAND ${CMAKE_COMMAND} -DSPV=${spv} -DNAME=${vname} -DOUT=${cfile} -P ${CMAKE_SOURCE_DIR}/cmake/embed_spirv.cmake
      DEPENDS ${src} ${VKD_SHADER_DEPS} ${CMAKE_SOURCE_DIR}/cmake/embed_spirv.cmake
      COMMENT "glsl -> spirv: ${vname}"
      VERBATIM)
    list(APPEND VKD_SPV_C_FILES ${cfile})
    string(APPEND decls "extern const uint32_t vkd_spv_${vname}[]; extern const size_t vkd_spv_${vname}_size;\n")
    set(built_${variant} 1)
  endforeach()
  if(built_f32 AND built_f16)
    set(spv_ptr "vkd_spv_${name}_f32, vkd_spv_${name}_f16")
    set(size_ptr "&vkd_spv_${name}_f32_size, &vkd_spv_${name}_f16_size")
  elseif(built_f32)
    set(spv_ptr "vkd_spv_${name}_f32, NULL")
    set(size_ptr "&vkd_spv_${name}_f32_size, NULL")
  elseif(built_f16)
    set(spv_ptr "NULL, vkd_spv_${name}_f16")
    set(size_ptr "NULL, &vkd_spv_${name}_f16_size")
  endif()
  string(APPEND rows "    [VKD_KERNEL_${uname}] = {\"${name}\", {${spv_ptr}}, {${size_ptr}}, ${bindings}, ${texel}u, ${flags}},\n")
endforeach()

# Written only when the text changes (file(CONFIGURE)), so a reconfigure recompiles nothing.
file(CONFIGURE OUTPUT ${VKD_GEN_DIR}/vkd_kernels.h @ONLY CONTENT
"/* generated by cmake/kernels.cmake from shaders/kernels.txt: do not edit */
#ifndef VKD_KERNELS_GEN_H
#define VKD_KERNELS_GEN_H
/* Every kernel of the manifest, built here or not (host/vk/kernel.h vkd_kernel_built). */
typedef enum vkd_kernel {
${enum_body}    VKD_KERNEL_COUNT
} vkd_kernel;
#endif
")
set(VKD_KERNEL_TABLE ${VKD_SPV_OUT}/kernel_table.c)
file(CONFIGURE OUTPUT ${VKD_KERNEL_TABLE} @ONLY CONTENT
"/* generated by cmake/kernels.cmake from shaders/kernels.txt: do not edit */
#include \"vk/kernel.h\"
${decls}
const vkd_kernel_info vkd_kernel_table[VKD_KERNEL_COUNT] = {
${rows}};
")
