// Shared by every shader. Built twice (CMakeLists.txt): VKD_F16=0 stores tensors as
// float, VKD_F16=1 as float16_t (16-bit storage; arithmetic in fp32, decision 3, except
// in the cooperative-matrix and the *_h kernels: docs/fp16.md). Spec constants 0..2 are
// the local size (host/vk/pipeline.h).
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable

#if VKD_F16
#define T float16_t
#define T2 f16vec2
#define T4 f16vec4
#else
#define T float
#define T2 vec2
#define T4 vec4
#endif

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z_id = 2) in;

// GLSL has no erf. erfc by the Chebyshev fit of Numerical Recipes (2nd ed., 6.2,
// fractional error < 1.2e-7 everywhere), so GELU(erf) stays at fp32 accuracy.
float erfc_f(float x)
{
    float z = abs(x);
    float t = 1.0 / (1.0 + 0.5 * z);
    float r = t * exp(-z * z - 1.26551223 +
                      t * (1.00002368 +
                      t * (0.37409196 +
                      t * (0.09678418 +
                      t * (-0.18628806 +
                      t * (0.27886807 +
                      t * (-1.13520398 +
                      t * (1.48851587 +
                      t * (-0.82215223 +
                      t * 0.17087277)))))))));
    return x >= 0.0 ? r : 2.0 - r;
}

float gelu_erf(float x) { return 0.5 * x * erfc_f(-x * 0.70710678118654752); }
float silu(float x) { return x / (1.0 + exp(-x)); }
float quick_gelu(float x) { return x / (1.0 + exp(-1.702 * x)); }
