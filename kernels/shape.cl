/* Layout ops on row-major float32 matrices: column blocks (concat/split/slice) and 2-D
 * transpose. dimension 0 = column (contiguous), dimension 1 = row. */

/* dst[r, dst_off + j] (+)= src[r, src_off + j] for j < ncols */
__kernel void copy_cols(__global const float* src, __global float* dst,
                        const int src_cols, const int dst_cols,
                        const int src_off, const int dst_off, const int accumulate) {
    const int j = get_global_id(0);
    const int r = get_global_id(1);
    const float v = src[r * src_cols + src_off + j];
    __global float* d = dst + r * dst_cols + dst_off + j;
    *d = accumulate ? *d + v : v;
}

/* dst (cols x rows) (+)= src (rows x cols)^T ; dimension 0 = column of src */
__kernel void transpose2d(__global const float* src, __global float* dst,
                          const int rows, const int cols, const int accumulate) {
    const int c = get_global_id(0);
    const int r = get_global_id(1);
    const float v = src[r * cols + c];
    __global float* d = dst + c * rows + r;
    *d = accumulate ? *d + v : v;
}

/* dst (cols x rows) = src (rows x cols)^T through 16 x 16 tiles in local memory: reads and
 * writes both run along rows (the plain transpose2d writes one float per line).
 * global (ceil(cols / 16) * 16, ceil(rows / 16) * 16), local (16, 16) */
__kernel void transpose2d_tiled(__global const float* src, __global float* dst,
                                const int rows, const int cols) {
    __local float tile[16][17];
    const int lx = get_local_id(0), ly = get_local_id(1);
    const int c0 = get_group_id(0) * 16, r0 = get_group_id(1) * 16;
    if (r0 + ly < rows && c0 + lx < cols) tile[ly][lx] = src[(size_t)(r0 + ly) * cols + c0 + lx];
    barrier(CLK_LOCAL_MEM_FENCE);
    if (c0 + ly < cols && r0 + lx < rows) dst[(size_t)(c0 + ly) * rows + r0 + lx] = tile[lx][ly];
}
