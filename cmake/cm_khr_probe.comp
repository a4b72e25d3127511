#version 450
#extension GL_KHR_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
// CMakeLists.txt: does the shader compiler (and spirv-val) know VK_KHR_cooperative_matrix?
layout(local_size_x = 32) in;
layout(std430, binding = 0) buffer Buf { float f[]; };
shared float16_t S[256];
void main()
{
    coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> a;
    coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> b;
    coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> c = coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);
    coopMatLoad(a, S, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
    coopMatLoad(b, S, 0, 16, gl_CooperativeMatrixLayoutColumnMajor);
    c = coopMatMulAdd(a, b, c);
    coopMatStore(c, f, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
}
