// Fast conv2d kernels (groups 1, dilation 1, any stride, asymmetric zero padding) as GEMMs over image patches.
// Forward and weight gradient are implicit GEMMs (patches packed straight into B panels); the input gradient is a
// forward conv for stride 1 and SGEMM + col2im otherwise; the backward passes run images (or runs of images) in parallel.
// Images with fewer output positions than a GEMM panel is wide share their GEMMs in runs (see ImagesPerGemm).
namespace InstaFlow.Tensors.Kernels;

/// <summary>Geometry of one conv2d: input [Batch, InC, H, W], weight [OutC, InC, KH, KW], output [Batch, OutC, OutH, OutW].</summary>
public readonly record struct Conv2dShape(int Batch, int InC, int H, int W, int OutC, int KH, int KW, int Stride,
    int PadTop, int PadBottom, int PadLeft, int PadRight)
{
    public int OutH => (H + PadTop + PadBottom - KH) / Stride + 1;
    public int OutW => (W + PadLeft + PadRight - KW) / Stride + 1;
    public bool IsPointwise => KH == 1 && KW == 1 && Stride == 1 && PadTop == 0 && PadBottom == 0 && PadLeft == 0 && PadRight == 0;
    public long Flops => 2L * Batch * OutC * OutH * OutW * InC * KH * KW;
}

public static unsafe class Conv2d
{
    /// <summary>y = conv(x, w) + bias (bias may be null).</summary>
    public static void Forward(in Conv2dShape s, float* x, float* w, float* bias, float* y) =>
        Forward(s, x, new StoredData((byte*)w, TensorDType.F32), bias, y);

    /// <summary>
    /// The same with the weight in its stored precision (F16/BF16 weights are widened while packed). prepackedW, when
    /// not null, is w already packed as PackA packs it here (a <see cref="WeightPack"/>), and w is not read. Shapes of
    /// at most four output channels go to <see cref="Conv2dFewOut"/> instead.
    /// </summary>
    internal static void Forward(in Conv2dShape s, float* x, StoredData w, float* bias, float* y, float* prepackedW = null)
    {
        if (Conv2dFewOut.Qualifies(s))
        {
            Conv2dFewOut.Forward(s, x, w, bias, y);
            return;
        }
        int ohw = s.OutH * s.OutW, kdim = s.InC * s.KH * s.KW;
        long inImg = (long)s.InC * s.H * s.W, outImg = (long)s.OutC * ohw;
        var buf = prepackedW == null ? PackArena.Rent(GemmPacking.PackedSize(s.OutC, kdim, GemmKernels.MR) * sizeof(float)) : null;
        try
        {
            float* wp = prepackedW;
            if (wp == null)
            {
                wp = (float*)buf!.Pointer;
                GemmPacking.PackA(w, kdim, s.OutC, kdim, wp);
                Ops.InferenceMark(s.IsPointwise ? "conv 1x1: packing the weight" : "conv direct: packing the weight");
            }
            // A small image's GEMM is planned as fewer tasks than there are threads (a training batch of 16x16 maps ran
            // on one core): then the images run in parallel instead, each GEMM serial inside (Par nests serially).
            // Every output element is summed in the same K order either way, so the results do not change.
            int group = ImagesPerGemm(s);
            bool parallelImages = s.Batch > group && Par.Threads > 1 && 2L * s.OutC * ohw * group * kdim < 10_000_000L * Par.Threads;
            RunImages(s, wp, x, bias, y, parallelImages);
        }
        finally { buf?.Release(); }
    }

    /// <summary>
    /// Images per GEMM of the forward-style convs: one, unless an image has fewer output positions than a B panel
    /// has columns (4x4 maps fill half of one), when runs of images share a GEMM of at least two full panels' width.
    /// It depends on the shape only, and the K order of every output element is the same for any run length.
    /// </summary>
    internal static int ImagesPerGemm(in Conv2dShape s)
    {
        int ohw = s.OutH * s.OutW;
        return ohw >= GemmKernels.NR ? 1 : Math.Min(s.Batch, (2 * GemmKernels.NR + ohw - 1) / ohw);
    }

    /// <summary>
    /// y = conv(x) (+ bias) for every image with the weight packed in wp: one GEMM per image, or per run of
    /// <see cref="ImagesPerGemm"/> small images into a scratch C that is then copied out image by image. The runs
    /// (or images) go in parallel when parallelImages, else one after another with each GEMM parallel inside.
    /// </summary>
    private static void RunImages(in Conv2dShape s, float* wp, float* x, float* bias, float* y, bool parallelImages)
    {
        int ohw = s.OutH * s.OutW, kdim = s.InC * s.KH * s.KW, group = ImagesPerGemm(s);
        long inImg = (long)s.InC * s.H * s.W, outImg = (long)s.OutC * ohw;
        int runs = (s.Batch + group - 1) / group;
        var g = s;
        void Run(int r)
        {
            int b0 = r * group, images = Math.Min(group, g.Batch - b0);
            float* xb = x + b0 * inImg, yb = y + b0 * outImg;
            if (group == 1)
            {
                // Each task packs the image's rows for its own columns as it goes: packing B in 4 MB chunks first (RunDense)
                // was 1.00-1.17x slower here, the VAE's 134-268 MB maps included (bench kernels --filter conv1x1).
                if (g.IsPointwise) Gemm.Run(g.OutC, ohw, kdim, wp, new DenseSource(xb, ohw, false), 0f, bias, yb, ohw);
                else Gemm.RunSharingB(g.OutC, ohw, kdim, wp, new Conv2dPatches(g, xb), 0f, bias, yb, ohw);
                return;
            }
            int n = images * ohw;
            var scratch = NativeBuffer.Rent((long)g.OutC * n * sizeof(float));
            try
            {
                float* c = (float*)scratch.Pointer;
                Gemm.RunSharingB(g.OutC, n, kdim, wp, new Conv2dPatches(g, xb), 0f, bias, c, n);
                for (int i = 0; i < images; i++)
                    for (int o = 0; o < g.OutC; o++)
                        new ReadOnlySpan<float>(c + (long)o * n + i * ohw, ohw).CopyTo(new Span<float>(yb + i * outImg + (long)o * ohw, ohw));
            }
            finally { scratch.Release(); }
        }
        if (parallelImages) Par.For(runs, Run);
        else for (int r = 0; r < runs; r++) Run(r);
    }

    /// <summary>gx = conv_transpose(gy, w): the gradient with respect to the input (overwrites gx).</summary>
    public static void BackwardInput(in Conv2dShape s, float* gy, float* w, float* gx)
    {
        if (InputGradientConv(s) != null)
        {
            BackwardInputAsConv(s, gy, w, gx);
            return;
        }
        int ohw = s.OutH * s.OutW, kdim = s.InC * s.KH * s.KW, group = ImagesPerGemm(s);
        long inImg = (long)s.InC * s.H * s.W, outImg = (long)s.OutC * ohw;
        int runs = (s.Batch + group - 1) / group;
        var g = s;
        // w^T is packed once for all the images (it was packed again for every image's GEMM).
        var packed = NativeBuffer.Rent(GemmPacking.PackedSize(kdim, s.OutC, GemmKernels.MR) * sizeof(float));
        try
        {
            float* wp = (float*)packed.Pointer;
            GemmPacking.PackA(true, w, kdim, kdim, s.OutC, 1f, wp);
            // Images (or runs of small ones, gy gathered side by side) in parallel: each run's GEMM and col2im are
            // planned from the shape alone, so the result is the same for any thread count (the GEMMs of small
            // training images are one task each, so one run per core keeps both busy).
            Par.For(runs, r =>
            {
                int b0 = r * group, images = Math.Min(group, g.Batch - b0), n = images * ohw;
                var buf = NativeBuffer.Rent(((long)kdim * n + (images > 1 ? (long)g.OutC * n : 0)) * sizeof(float));
                try
                {
                    float* col = (float*)buf.Pointer, rhs = gy + b0 * outImg;
                    if (images > 1)
                    {
                        rhs = col + (long)kdim * n;
                        for (int i = 0; i < images; i++)
                            for (int o = 0; o < g.OutC; o++)
                                new ReadOnlySpan<float>(gy + (b0 + i) * outImg + (long)o * ohw, ohw).CopyTo(new Span<float>(rhs + (long)o * n + i * ohw, ohw));
                    }
                    Gemm.RunDense(kdim, n, g.OutC, wp, new DenseSource(rhs, n, false), 0f, null, col, n);
                    for (int i = 0; i < images; i++) Col2Im(g, col + i * ohw, n, gx + (b0 + i) * inImg);
                }
                finally { buf.Release(); }
            });
        }
        finally { packed.Release(); }
    }

    /// <summary>
    /// With stride 1 the input gradient is itself a convolution of gy with the weights flipped in space and with
    /// in/out channels swapped, padded by (kernel - 1 - pad): so it runs on the implicit-GEMM forward's panels, no
    /// col2im. The flipped weights are packed once; the images (or runs of small ones) then run in parallel, one GEMM each.
    /// </summary>
    private static void BackwardInputAsConv(in Conv2dShape s, float* gy, float* w, float* gx)
    {
        var t = InputGradientConv(s)!.Value;
        int kdim = s.OutC * s.KH * s.KW;
        var flipped = NativeBuffer.Rent((long)s.InC * kdim * sizeof(float));
        var packed = NativeBuffer.Rent(GemmPacking.PackedSize(s.InC, kdim, GemmKernels.MR) * sizeof(float));
        try
        {
            float* wt = (float*)flipped.Pointer, wp = (float*)packed.Pointer;
            FlipWeights(s, w, wt);
            GemmPacking.PackA(false, wt, kdim, s.InC, kdim, 1f, wp);
            RunImages(t, wp, gy, null, gx, parallelImages: true);
        }
        finally { packed.Release(); flipped.Release(); }
    }

    /// <summary>
    /// The input gradient as a convolution of gy (stride 1 and every padding below the kernel), else null: in and out
    /// channels swapped, padded by kernel - 1 - pad, with the weights of <see cref="FlipWeights"/>.
    /// </summary>
    public static Conv2dShape? InputGradientConv(in Conv2dShape s) =>
        s.Stride == 1 && s.PadTop < s.KH && s.PadBottom < s.KH && s.PadLeft < s.KW && s.PadRight < s.KW
            ? new Conv2dShape(s.Batch, s.OutC, s.OutH, s.OutW, s.InC, s.KH, s.KW, 1,
                s.KH - 1 - s.PadTop, s.KH - 1 - s.PadBottom, s.KW - 1 - s.PadLeft, s.KW - 1 - s.PadRight)
            : null;

    /// <summary>wt [InC, OutC, KH, KW] = w [OutC, InC, KH, KW] with channels swapped and taps turned 180 degrees.</summary>
    private static void FlipWeights(in Conv2dShape s, float* w, float* wt)
    {
        int taps = s.KH * s.KW;
        for (int o = 0; o < s.OutC; o++)
            for (int c = 0; c < s.InC; c++)
                for (int r = 0; r < taps; r++)
                    wt[((long)c * s.OutC + o) * taps + taps - 1 - r] = w[((long)o * s.InC + c) * taps + r];
    }

    /// <summary>
    /// gx (overwritten) by the Winograd kernel, for a conv whose <see cref="InputGradientConv"/> is 3x3, stride 1,
    /// padding 1 (so is the conv itself): the backward then takes the same 2.25x cut in multiply-adds as the forward,
    /// which the training step's forward already takes, with the same error bounds. The caller chooses, as
    /// <see cref="Ops.Conv2d(Tensor, Tensor, Tensor?, int, int)"/> does for the forward.
    /// </summary>
    public static void BackwardInputWinograd(in Conv2dShape s, float* gy, float* w, float* gx)
    {
        if (InputGradientConv(s) is not { } t || !Conv2dWinograd.Qualifies(t))
            throw new ArgumentException($"Conv2d.BackwardInputWinograd: the input gradient of {s} is not a 3x3, stride 1, padding 1 conv");
        var flipped = NativeBuffer.Rent((long)s.InC * s.OutC * s.KH * s.KW * sizeof(float));
        // F(4x4) always: the training networks' images are small, and the gradient keeps the forward's error bound.
        var transformed = NativeBuffer.Rent(Conv2dWinograd.TransformedFloats(t.OutC, t.InC, WinogradTile.F4) * sizeof(float));
        try
        {
            float* wt = (float*)flipped.Pointer, u = (float*)transformed.Pointer;
            FlipWeights(s, w, wt);
            // Transformed here, not inside the kernel, whose profile mark for that step is an inference one.
            var stored = new StoredData((byte*)wt, TensorDType.F32);
            Conv2dWinograd.TransformWeights(stored, t.OutC, t.InC, u, WinogradTile.F4);
            Conv2dWinograd.Forward(t, gy, stored, null, gx, WinogradTile.F4, u);
        }
        finally { transformed.Release(); flipped.Release(); }
    }

    /// <summary>Output positions (over all images) per K chunk of the weight gradient: the unit of its parallel work.</summary>
    internal const int WeightGradChunk = 1024;

    /// <summary>
    /// gw = sum over images of gy x patches^T; gbias = sum of gy over images and positions (both overwritten).
    /// One GEMM with K running over every image's output positions (patches packed straight from the images, no
    /// im2col), cut into chunks of whole images that run in parallel into their own partial sums, which are then
    /// added in chunk order: the chunks depend on the shape only, so the result is the same for any thread count.
    /// </summary>
    public static void BackwardWeight(in Conv2dShape s, float* gy, float* x, float* gw, float* gbias)
    {
        int ohw = s.OutH * s.OutW, kdim = s.InC * s.KH * s.KW;
        long outImg = (long)s.OutC * ohw, wLen = (long)s.OutC * kdim;
        int perChunk = Math.Max(1, WeightGradChunk / ohw);
        int chunks = (s.Batch + perChunk - 1) / perChunk;
        var partials = chunks > 1 ? NativeBuffer.Rent((chunks - 1) * wLen * sizeof(float)) : null;
        var g = s;
        try
        {
            Par.For(chunks, ch =>
            {
                int b0 = ch * perChunk, images = Math.Min(perChunk, g.Batch - b0);
                float* dst = ch == 0 ? gw : (float*)partials!.Pointer + (ch - 1) * wLen;
                WeightGradImages(g, gy + b0 * outImg, x + (long)b0 * g.InC * g.H * g.W, images, dst);
            });
            for (int ch = 1; ch < chunks; ch++) Blas.Axpy(1f, (float*)partials!.Pointer + (ch - 1) * wLen, gw, wLen);
        }
        finally { partials?.Release(); }
        if (gbias != null) BiasGradient(s, gy, gbias);
    }

    /// <summary>
    /// gw and gbias (both overwritten) as <see cref="BackwardWeight"/> gives them, gw by the Winograd F(4x4, 3x3) adjoint
    /// (<see cref="Conv2dWinogradWeightGrad"/>): 4x fewer multiply-adds, at the forward's error bound. s must be 3x3,
    /// stride 1, padding 1; the caller chooses (<see cref="Conv2dWinograd.ShouldUseForWeightGradient"/>).
    /// </summary>
    public static void BackwardWeightWinograd(in Conv2dShape s, float* gy, float* x, float* gw, float* gbias)
    {
        Conv2dWinogradWeightGrad.Run(s, gy, x, gw);
        if (gbias != null) BiasGradient(s, gy, gbias);
    }

    /// <summary>gbias[o] = the sum of gy's channel o over images and positions, image by image.</summary>
    private static void BiasGradient(in Conv2dShape s, float* gy, float* gbias)
    {
        int ohw = s.OutH * s.OutW;
        long outImg = (long)s.OutC * ohw;
        for (int o = 0; o < s.OutC; o++)
        {
            float acc = 0;
            for (int b = 0; b < s.Batch; b++) acc += Blas.Sum(gy + b * outImg + (long)o * ohw, ohw);
            gbias[o] = acc;
        }
    }

    /// <summary>gw = gy x patches^T over a run of images, as one GEMM whose K is their output positions in order.</summary>
    private static void WeightGradImages(in Conv2dShape s, float* gy, float* x, int images, float* gw)
    {
        int ohw = s.OutH * s.OutW, kdim = s.InC * s.KH * s.KW, k = images * ohw;
        if (s.IsPointwise)
        {
            PointwiseWeightGrad(s, gy, x, images, gw);
            return;
        }
        var packed = NativeBuffer.Rent(GemmPacking.PackedSize(s.OutC, k, GemmKernels.MR) * sizeof(float));
        try
        {
            // gy is [image, OutC, position]; A is each output channel's positions of all the images in one row
            GemmPacking.PackARowsPerImage(gy, (long)s.OutC * ohw, ohw, images, s.OutC, (float*)packed.Pointer);
            Gemm.Run(s.OutC, kdim, k, (float*)packed.Pointer, new Conv2dPatchesTransposed(s, x), 0f, null, gw, kdim);
        }
        finally { packed.Release(); }
    }

    /// <summary>
    /// A 1x1 conv's patches are the image itself, [InC, positions]: each image's GEMM takes it as a dense transposed B
    /// (packed by rows, faster than the patch gather) and gy as A as it lies, adding onto the images before it.
    /// </summary>
    private static void PointwiseWeightGrad(in Conv2dShape s, float* gy, float* x, int images, float* gw)
    {
        int ohw = s.H * s.W;
        long inImg = (long)s.InC * ohw, outImg = (long)s.OutC * ohw;
        var packed = NativeBuffer.Rent(GemmPacking.PackedSize(s.OutC, ohw, GemmKernels.MR) * sizeof(float));
        try
        {
            float* gyp = (float*)packed.Pointer;
            for (int b = 0; b < images; b++)
            {
                GemmPacking.PackA(false, gy + b * outImg, ohw, s.OutC, ohw, 1f, gyp);
                Gemm.RunDense(s.OutC, s.InC, ohw, gyp, new DenseSource(x + b * inImg, ohw, true), b == 0 ? 0f : 1f, null, gw, s.InC);
            }
        }
        finally { packed.Release(); }
    }

    /// <summary>
    /// Scatters patch columns col[(c, ky, kx), (oy, ox)] (rows ldcol apart) back onto one image, adding overlaps
    /// (overwrites x). Serial:
    /// its caller runs the images in parallel.
    /// </summary>
    private static void Col2Im(in Conv2dShape g, float* col, int ldcol, float* x)
    {
        int oh = g.OutH, ow = g.OutW;
        for (int c = 0; c < g.InC; c++)
        {
            float* xc = x + (long)c * g.H * g.W;
            new Span<float>(xc, g.H * g.W).Clear();
            for (int ky = 0; ky < g.KH; ky++)
                for (int kx = 0; kx < g.KW; kx++)
                {
                    float* src = col + ((long)(c * g.KH + ky) * g.KW + kx) * ldcol;
                    for (int oy = 0; oy < oh; oy++)
                    {
                        int iy = oy * g.Stride + ky - g.PadTop;
                        if (iy < 0 || iy >= g.H) continue;
                        float* srow = src + (long)oy * ow;
                        float* xrow = xc + (long)iy * g.W;
                        for (int ox = 0; ox < ow; ox++)
                        {
                            int ix = ox * g.Stride + kx - g.PadLeft;
                            if ((uint)ix < (uint)g.W) xrow[ix] += srow[ox];
                        }
                    }
                }
        }
    }
}

/// <summary>Direct seven-loop convolution in double: the oracle for <see cref="Conv2d"/>.</summary>
internal static unsafe class Conv2dReference
{
    public static void Forward(in Conv2dShape s, float* x, float* w, float* bias, float* y)
    {
        int oh = s.OutH, ow = s.OutW;
        for (int b = 0; b < s.Batch; b++)
            for (int o = 0; o < s.OutC; o++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                    {
                        double acc = bias != null ? bias[o] : 0;
                        for (int c = 0; c < s.InC; c++)
                            for (int ky = 0; ky < s.KH; ky++)
                                for (int kx = 0; kx < s.KW; kx++)
                                {
                                    int iy = oy * s.Stride + ky - s.PadTop, ix = ox * s.Stride + kx - s.PadLeft;
                                    if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
                                    acc += (double)x[((long)(b * s.InC + c) * s.H + iy) * s.W + ix] * w[((long)(o * s.InC + c) * s.KH + ky) * s.KW + kx];
                                }
                        y[((long)(b * s.OutC + o) * oh + oy) * ow + ox] = (float)acc;
                    }
    }
}
