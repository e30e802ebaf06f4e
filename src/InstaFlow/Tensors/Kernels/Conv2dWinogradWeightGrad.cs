// The weight gradient of a 3x3, stride-1, padding-1 conv through F(4x4, 3x3): the adjoint of the Winograd forward,
// with 4x fewer multiply-adds than the patch GEMM. Hand-written because no .NET library has it.
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace InstaFlow.Tensors.Kernels;

/// <summary>
/// The forward computes each output tile as Y = A^T [ sum over c of U[o, c] . V[c] ] A, with U = G g G^T and
/// V = B^T d B (<see cref="Conv2dWinograd"/>). Differentiating that in g gives
/// <code>dg[o, c] = G^T dU[o, c] G,   dU[o, c] = sum over tiles of Z[o] . V[c],   Z = A dY A^T</code>
/// so each of the 36 points is one GEMM, OutC x InC, whose K runs over the tiles of every image in order.
/// <para>
/// Images go in chunks fixed by the shape alone. A chunk's x and dY are first copied channels-last, x with its zero
/// border and both cut to whole tiles, so the transforms run on 16 channels per vector with plain loads and no edge
/// cases; they write V and Z as [point][tile][channel], the GEMMs' B and A^T as they lie. Every point's GEMM then adds
/// the chunk's products into its dU; last, G^T dU G gives the 3x3 taps. The GEMMs of one point run on one thread, in
/// chunk order, so the sums and the bits are the same for any thread count. The rounding is that of the forward's
/// transforms (A scales by up to 8, B^T by 25): <c>ConvWinogradTests</c> bounds it against double loops.
/// </para>
/// </summary>
internal static unsafe class Conv2dWinogradWeightGrad
{
    private const int L = 16, Alpha = 6, M = 4, Points = Alpha * Alpha;

    /// <summary>Bytes of copies, V and Z one chunk of images may take: the GEMMs then read them from the L3, not memory.</summary>
    private const long ChunkBytes = 24L << 20;

    /// <summary>Largest dU (36 OutC x InC matrices), and largest chunk for one image, this path allocates; beyond, the patch GEMM.</summary>
    internal const long MaxTransformedBytes = 64L << 20;

    /// <summary>Tests set this to cut a batch into chunks of this many images.</summary>
    internal static int ChunkImagesOverride;

    /// <summary>Whether a conv's weight gradient fits this path: 3x3, stride 1, padding 1, within <see cref="MaxTransformedBytes"/>.</summary>
    internal static bool Fits(in Conv2dShape s) =>
        Conv2dWinograd.Qualifies(s) && (long)Points * s.OutC * s.InC * sizeof(float) <= MaxTransformedBytes
        && ImageBytes(s) <= MaxTransformedBytes;

    /// <summary>Bytes one image takes in a chunk: its channels-last copies and its tiles' V and Z.</summary>
    private static long ImageBytes(in Conv2dShape s)
    {
        var l = new Layout(s, 1);
        return (l.XImage * l.Ci + l.GImage * l.Co + (long)Points * l.TilesPerImage * (l.Ci + l.Co)) * sizeof(float);
    }

    /// <summary>Images per chunk: within <see cref="ChunkBytes"/>, at least one.</summary>
    internal static int ChunkImages(in Conv2dShape s) =>
        ChunkImagesOverride > 0 ? ChunkImagesOverride : (int)Math.Clamp(ChunkBytes / ImageBytes(s), 1, s.Batch);

    /// <summary>Sizes of one chunk's buffers: the padded channels-last copies and the tiles.</summary>
    private readonly struct Layout
    {
        public readonly int TilesX, TilesY, TilesPerImage, Ci, Co, Hp, Wp, Hg, Wg;
        public readonly long XImage, GImage, Tiles;

        public Layout(in Conv2dShape s, int images)
        {
            TilesX = (s.W + M - 1) / M; TilesY = (s.H + M - 1) / M;
            TilesPerImage = TilesX * TilesY;
            Tiles = (long)images * TilesPerImage;
            Ci = GemmPacking.RoundUp(s.InC, L); Co = GemmPacking.RoundUp(s.OutC, L);
            // x with a zero border of 1, then zeros to whole 6x6 patches; dY with zeros to whole 4x4 tiles
            Hp = TilesY * M + 2; Wp = TilesX * M + 2;
            Hg = TilesY * M; Wg = TilesX * M;
            XImage = (long)Hp * Wp; GImage = (long)Hg * Wg;
        }
    }

    /// <summary>gw [OutC, InC, 3, 3] (overwritten) = the gradient of the conv s in its weight, for the output gradient gy and input x.</summary>
    public static void Run(in Conv2dShape s, float* gy, float* x, float* gw)
    {
        if (!Fits(s)) throw new ArgumentException($"Conv2dWinogradWeightGrad: needs a 3x3, stride 1, padding 1 conv within {MaxTransformedBytes >> 20} MiB of buffers; got {s}");
        int chunk = ChunkImages(s);
        var lay = new Layout(s, chunk);
        long vStride = Skewed(lay.Tiles * lay.Ci), zStride = Skewed(lay.Tiles * lay.Co);
        long uStride = Skewed((long)s.OutC * s.InC + L);
        var xbuf = NativeBuffer.Rent(chunk * lay.XImage * lay.Ci * sizeof(float));
        var gbuf = NativeBuffer.Rent(chunk * lay.GImage * lay.Co * sizeof(float));
        var vbuf = NativeBuffer.Rent(Points * vStride * sizeof(float));
        var zbuf = NativeBuffer.Rent(Points * zStride * sizeof(float));
        var ubuf = NativeBuffer.Rent(Points * uStride * sizeof(float));
        var g = s;
        try
        {
            float* xc = (float*)xbuf.Pointer, gc = (float*)gbuf.Pointer, v = (float*)vbuf.Pointer, z = (float*)zbuf.Pointer, u = (float*)ubuf.Pointer;
            long plane = (long)s.H * s.W;
            int cg = lay.Ci / L, og = lay.Co / L;
            for (int b0 = 0; b0 < s.Batch; b0 += chunk)
            {
                int images = Math.Min(chunk, s.Batch - b0);
                long tiles = (long)images * lay.TilesPerImage;
                float* xb = x + (long)b0 * s.InC * plane, gb = gy + (long)b0 * s.OutC * plane;
                // 1. channels-last copies, one (image, row) of the padded copy per item
                Par.ForRange((long)images * (lay.Hp + lay.Hg), 4, (i0, i1) =>
                {
                    for (long i = i0; i < i1; i++)
                    {
                        int img = (int)(i / (lay.Hp + lay.Hg)), row = (int)(i % (lay.Hp + lay.Hg));
                        if (row < lay.Hp)
                            CopyRow(xb + (long)img * g.InC * plane, g.InC, g.H, g.W, row - 1, 1, xc + ((long)img * lay.XImage + (long)row * lay.Wp) * lay.Ci, lay.Wp, lay.Ci);
                        else
                            CopyRow(gb + (long)img * g.OutC * plane, g.OutC, g.H, g.W, row - lay.Hp, 0, gc + ((long)img * lay.GImage + (long)(row - lay.Hp) * lay.Wg) * lay.Co, lay.Wg, lay.Co);
                    }
                });
                // 2. V = B^T d B and Z = A dY A^T, one tile and 16 channels per item
                Par.ForRange(tiles * (cg + og), 16, (i0, i1) =>
                {
                    for (long i = i0; i < i1; i++)
                    {
                        long t = i / (cg + og);
                        int grp = (int)(i % (cg + og));
                        int img = (int)(t / lay.TilesPerImage), rest = (int)(t % lay.TilesPerImage);
                        int ty = rest / lay.TilesX * M, tx = rest % lay.TilesX * M;
                        if (grp < cg)
                        {
                            float* src = xc + ((long)img * lay.XImage + (long)ty * lay.Wp + tx) * lay.Ci + grp * L;
                            InputTransform(src, lay.Ci, (long)lay.Wp * lay.Ci, v + t * lay.Ci + grp * L, vStride);
                        }
                        else
                        {
                            int o0 = (grp - cg) * L;
                            float* src = gc + ((long)img * lay.GImage + (long)ty * lay.Wg + tx) * lay.Co + o0;
                            GradientTransform(src, lay.Co, (long)lay.Wg * lay.Co, z + t * lay.Co + o0, zStride);
                        }
                    }
                });
                // 3. dU[point] (+)= Z[point]^T V[point] over this chunk's tiles, one point per task
                float beta = b0 == 0 ? 0f : 1f;
                int k = (int)tiles;
                Par.For(Points, pt => Gemm.Sgemm(true, false, g.OutC, g.InC, k, 1f, z + pt * zStride, lay.Co, v + pt * vStride, lay.Ci, beta,
                    u + pt * uStride, g.InC));
            }
            // 4. gw = G^T dU G, 16 (o, c) pairs per vector
            long pairs = (long)s.OutC * s.InC;
            Par.ForRange((pairs + L - 1) / L, 16, (q0, q1) =>
            {
                for (long q = q0; q < q1; q++) OutputTransform(u + q * L, uStride, gw + q * L * 9, (int)Math.Min(L, pairs - q * L));
            });
        }
        finally
        {
            ubuf.Release();
            zbuf.Release();
            vbuf.Release();
            gbuf.Release();
            xbuf.Release();
        }
    }

    /// <summary>An odd number of cache lines apart, so the 36 points' rows at one offset do not share a cache set.</summary>
    private static long Skewed(long floats) => ((floats + L - 1) / L | 1) * L;

    /// <summary>
    /// Row y of image img ([channels, h, w]) into one row of a channels-last copy (dst: width pixels of ld floats), at
    /// pixel offset pad; pixels outside the image, and rows y outside it, are zeros. Channels past the image's (up to ld)
    /// are left as they are: no GEMM reads them.
    /// </summary>
    private static void CopyRow(float* img, int channels, int h, int w, int y, int pad, float* dst, int width, int ld)
    {
        if ((uint)y >= (uint)h) { new Span<float>(dst, width * ld).Clear(); return; }
        if (pad > 0) new Span<float>(dst, pad * ld).Clear();
        if (pad + w < width) new Span<float>(dst + (long)(pad + w) * ld, (width - pad - w) * ld).Clear();
        long plane = (long)h * w;
        float* src = img + (long)y * w;
        float* d = dst + (long)pad * ld;
        int c0 = 0;
        if (Avx.IsSupported)
            for (; c0 + 8 <= channels; c0 += 8)
            {
                int x0 = 0;
                for (; x0 + 8 <= w; x0 += 8) DenseSource.Transpose8x8(src + c0 * plane + x0, plane, d + (long)x0 * ld + c0, ld);
                for (; x0 < w; x0++)
                    for (int c = c0; c < c0 + 8; c++) d[(long)x0 * ld + c] = src[c * plane + x0];
            }
        for (int c = c0; c < channels; c++)
            for (int x0 = 0; x0 < w; x0++) d[(long)x0 * ld + c] = src[c * plane + x0];
    }

    /// <summary>V = B^T d B of 16 channels over one 6x6 patch (pixels ld floats apart, rows rowLd), to dst[point * stride].</summary>
    private static void InputTransform(float* src, int ld, long rowLd, float* dst, long stride)
    {
        var t = stackalloc Vector512<float>[Points];
        var line = stackalloc Vector512<float>[Alpha];
        // down the columns (B^T d), then along the rows ((B^T d) B), as the forward's input transform
        for (int k = 0; k < Alpha; k++) WinogradF4.Input(src + k * ld, rowLd, t + k, Alpha);
        for (int r = 0; r < Alpha; r++)
        {
            WinogradF4.Input((float*)(t + r * Alpha), L, line, 1);
            for (int l = 0; l < Alpha; l++) line[l].Store(dst + (r * Alpha + l) * stride);
        }
    }

    /// <summary>Z = A dY A^T of 16 output channels over one 4x4 tile (pixels ld floats apart, rows rowLd), to dst[point * stride].</summary>
    private static void GradientTransform(float* src, int ld, long rowLd, float* dst, long stride)
    {
        var e = stackalloc Vector512<float>[M];
        var t = stackalloc Vector512<float>[Alpha * M];
        var line = stackalloc Vector512<float>[Alpha];
        // down the columns (A dY), then along the rows ((A dY) A^T)
        for (int k = 0; k < M; k++)
        {
            for (int r = 0; r < M; r++) e[r] = Vector512.Load(src + r * rowLd + k * ld);
            WinogradF4.OutputAdjoint(e, 1, t + k, M);
        }
        for (int r = 0; r < Alpha; r++)
        {
            WinogradF4.OutputAdjoint(t + r * M, 1, line, 1);
            for (int l = 0; l < Alpha; l++) line[l].Store(dst + (r * Alpha + l) * stride);
        }
    }

    /// <summary>gw[pair * 9 + tap] = (G^T dU G)[tap] for count consecutive (o, c) pairs, dU's point pt at u[pt * stride + pair].</summary>
    private static void OutputTransform(float* u, long stride, float* gw, int count)
    {
        var du = stackalloc Vector512<float>[Points];
        var t = stackalloc Vector512<float>[3 * Alpha];
        var taps = stackalloc Vector512<float>[9];
        for (int pt = 0; pt < Points; pt++) du[pt] = Vector512.Load(u + pt * stride);
        // down the columns (G^T dU), then along the rows ((G^T dU) G)
        for (int l = 0; l < Alpha; l++) WinogradF4.WeightAdjoint(du + l, Alpha, t + l, Alpha);
        for (int r = 0; r < 3; r++) WinogradF4.WeightAdjoint(t + r * Alpha, 1, taps + r * 3, 1);
        float* f = (float*)taps;
        for (int j = 0; j < count; j++)
            for (int tap = 0; tap < 9; tap++) gw[j * 9 + tap] = f[tap * L + j];
    }
}
