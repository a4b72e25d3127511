# Turns one .spv file into a C file holding it as a uint32_t array.
# Usage: cmake -DSPV=in.spv -DNAME=foo_f32 -DOUT=out.c -P embed_spirv.cmake
file(READ ${SPV} hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR nbytes "${nhex} / 2")
math(EXPR rem "${nbytes} % 4")
if(NOT rem EQUAL 0)
  message(FATAL_ERROR "${SPV}: size ${nbytes} is not a multiple of 4")
endif()
# SPIR-V is a stream of little-endian words on every platform we build on; swap bytes per word.
string(REGEX REPLACE "(..)(..)(..)(..)" "0x\\4\\3\\2\\1u," words "${hex}")
string(REGEX REPLACE "((0x........u,){8})" "\\1\n" words "${words}")
math(EXPR nwords "${nbytes} / 4")
file(WRITE ${OUT} "#include <stdint.h>\n#include <stddef.h>\nconst uint32_t vkd_spv_${NAME}[${nwords}] = {\n${words}\n};\nconst size_t vkd_spv_${NAME}_size = ${nbytes};\n")
