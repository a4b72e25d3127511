// Split-K of the cooperative-matrix GEMMs (gemm.comp families 3 and 4; host/ops/matmul.c
// vkd_gemm_dispatch): phase 1 (and 3) writes chunk z's fp32 sums to part[s_off + (z * M
// + m) * N + n]; phase 2, a dispatch of its own, adds the chunks up; phase 3 leaves that
// to the last workgroup of each tile. Included by gemm.comp after Cs and gemm_epilogue.

// split-K partial sums (pc.phase 1 and 3 write, 2 and 3 read): host/ops/matmul.c
// vkd_gemm_ksplit. Coherent: in phase 3 a workgroup reads what others wrote.
layout(std430, binding = 7) coherent buffer Part { float part[]; };
// phase 3: one ticket per output tile (vk/cmd.h vkd_cmd_tickets), zero before and after
layout(std430, binding = 5) coherent buffer Tickets { uint tickets[]; };
shared uint LastChunk; // phase 3: this workgroup took the tile's last ticket

// Split-K, phase 2: out[m, n] = epilogue(sum over the chunks z of part[z, m, n]), one
// invocation per output element along n (coalesced), the grid's x and y flattened
void gemm_splitk_reduce()
{
    uint idx = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x +
               gl_LocalInvocationID.x;
    if (idx >= pc.M * pc.N)
        return;
    uint m = idx / pc.N, n = idx - m * pc.N;
    float v = 0.0;
    for (uint z = 0; z < pc.ksplit; z++)
        v += part[pc.s_off + (z * pc.M + m) * pc.N + n];
    gemm_epilogue(m, n, v);
}

// Split-K, phase 3: after every invocation wrote its part of this chunk's sums, one
// takes a ticket for the tile; the workgroup whose ticket is the last (ksplit - 1) adds
// the chunks up in phase 2's order (its own from Cs: the same values) and applies the
// epilogue, and sets the ticket back to zero for the next split GEMM. The release
// before the ticket and the acquire after it order the other workgroups' stores before
// the last one's loads (with the Vulkan memory model where the kernel has it; the
// emulation, which runs on lavapipe, has GLSL's memoryBarrierBuffer).
void gemm_splitk_last(uint m0, uint n0)
{
    uint tid = gl_LocalInvocationID.x;
#ifdef VKD_CM_EMULATE
    memoryBarrierBuffer();
    barrier();
    if (tid == 0u) {
        uint t = atomicAdd(tickets[gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x], 1u);
#else
    controlBarrier(gl_ScopeWorkgroup, gl_ScopeDevice, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared,
                   gl_SemanticsAcquireRelease);
    if (tid == 0u) {
        uint t = atomicAdd(tickets[gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x], 1u, gl_ScopeDevice,
                           gl_StorageSemanticsBuffer, gl_SemanticsAcquireRelease);
#endif
        LastChunk = t == pc.ksplit - 1u ? 1u : 0u;
        if (t == pc.ksplit - 1u)
            tickets[gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x] = 0u;
    }
#ifdef VKD_CM_EMULATE
    barrier();
    memoryBarrierBuffer();
#else
    controlBarrier(gl_ScopeWorkgroup, gl_ScopeDevice, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared,
                   gl_SemanticsAcquireRelease);
#endif
    if (LastChunk == 0u) // uniform: read after the barrier
        return;
    uint own = gl_WorkGroupID.z;
    for (uint e = tid; e < BM * BN; e += gl_WorkGroupSize.x) {
        uint r = e / BN, c = e % BN;
        uint m = m0 + r, n = n0 + c;
        if (m >= pc.M || n >= pc.N)
            continue;
        float v = 0.0;
        for (uint z = 0; z < pc.ksplit; z++)
            v += z == own ? Cs[r * BNP + c] : part[pc.s_off + (z * pc.M + m) * pc.N + n];
        gemm_epilogue(m, n, v);
    }
}
