// Bit-compatible re-implementation of PyTorch's CPU generator (torch.Generator("cpu") / torch.manual_seed):
// mt19937 plus the exact sampling order of torch.rand / torch.randn / torch.normal, so a seed gives the same noise.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace InstaFlow.Tensors.Random;

/// <summary>
/// <c>var g = new TorchGenerator(seed); Tensor x = g.Randn(1, 4, 64, 64);</c> equals <c>torch.manual_seed(seed);
/// torch.randn(1, 4, 64, 64)</c> bit for bit, and later draws continue the same stream. Tensors come from
/// <see cref="Tensor.Empty"/> (owned by the current scope). Not thread-safe: use one generator per thread.
/// </summary>
public sealed class TorchGenerator
{
    private const int N = 624;
    private const int M = 397;
    private const uint MatrixA = 0x9908B0DF;

    /// <summary>Size of the byte blob of torch.Generator.get_state() (the legacy THGenerator layout plus the float cache).</summary>
    public const int StateBytes = 5056;

    private readonly uint[] _state = new uint[N];
    private int _left;
    private int _next;
    private ulong _seed;
    // Box-Muller makes values in pairs; PyTorch caches the unused one for the next scalar draw (double path only
    // for randn, the float cache exists for its state format and is carried through GetState/SetState).
    private double? _nextDoubleNormal;
    private float? _nextFloatNormal;

    public TorchGenerator(ulong seed) => ManualSeed(seed);

    /// <summary>The seed given to the constructor or the last <see cref="ManualSeed"/> (torch: initial_seed()).</summary>
    public ulong InitialSeed => _seed;

    /// <summary>torch.manual_seed: mt19937 is seeded from the low 32 bits, the full 64-bit value is remembered.</summary>
    public TorchGenerator ManualSeed(ulong seed)
    {
        _seed = seed;
        _state[0] = (uint)seed;
        for (uint j = 1; j < N; j++)
            _state[j] = 1812433253u * (_state[j - 1] ^ (_state[j - 1] >> 30)) + j;
        _left = 1;
        _next = 0;
        _nextDoubleNormal = null;
        _nextFloatNormal = null;
        return this;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint NextUInt32()
    {
        if (--_left == 0) Twist();
        uint y = _state[_next++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9D2C5680;
        y ^= (y << 15) & 0xEFC60000;
        y ^= y >> 18;
        return y;
    }

    /// <summary>Two 32-bit draws, the first one in the high half (torch random64()).</summary>
    public ulong NextUInt64()
    {
        ulong hi = NextUInt32();
        return hi << 32 | NextUInt32();
    }

    private void Twist()
    {
        _left = N;
        _next = 0;
        var s = _state;
        int k = 0;
        for (; k < N - M; k++) s[k] = s[k + M] ^ Mix(s[k], s[k + 1]);
        for (; k < N - 1; k++) s[k] = s[k + M - N] ^ Mix(s[k], s[k + 1]);
        s[N - 1] = s[M - 1] ^ Mix(s[N - 1], s[0]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Mix(uint u, uint v) => (((u & 0x80000000u) | (v & 0x7FFFFFFFu)) >> 1) ^ ((v & 1) != 0 ? MatrixA : 0);

    /// <summary>Uniform float in [0, 1): the low 24 bits of one draw (torch uniform_real_distribution&lt;float&gt;).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float NextFloat() => (NextUInt32() & 0xFFFFFF) * (1f / (1 << 24));

    /// <summary>Uniform double in [0, 1): the low 53 bits of a 64-bit draw.</summary>
    public double NextDouble() => (NextUInt64() & ((1UL << 53) - 1)) * (1.0 / (1UL << 53));

    /// <summary>One standard normal sample the way torch's scalar path (normal_distribution&lt;double&gt;) makes it.</summary>
    public double NextNormalDouble()
    {
        if (_nextDoubleNormal is double cached)
        {
            _nextDoubleNormal = null;
            return cached;
        }
        double u1 = NextDouble();
        double u2 = NextDouble();
        double r = Math.Sqrt(-2.0 * Math.Log(1.0 - u2));
        double theta = 2.0 * Math.PI * u1;
        _nextDoubleNormal = r * Math.Sin(theta);
        return r * Math.Cos(theta);
    }

    // ---- tensor fills (torch.rand / torch.randn / Tensor.normal_) ----

    public Tensor Randn(params int[] shape) => Normal(0f, 1f, shape);

    public Tensor Rand(params int[] shape)
    {
        var t = Tensor.Empty(shape);
        FillUniform(t.Span);
        return t;
    }

    public Tensor Normal(float mean, float std, params int[] shape)
    {
        var t = Tensor.Empty(shape);
        FillNormal(t.Span, mean, std);
        return t;
    }

    public void FillUniform(Span<float> dst, float from = 0f, float to = 1f)
    {
        if (!(from <= to)) throw new ArgumentException($"FillUniform: need from <= to, got [{from}, {to})");
        float range = to - from;
        // x * range + from, fused like GCC compiles PyTorch's AVX2 kernels (see CephesMath); exact for [0, 1).
        for (int i = 0; i < dst.Length; i++) dst[i] = MathF.FusedMultiplyAdd(NextFloat(), range, from);
    }

    /// <summary>
    /// Fills a contiguous float32 buffer like torch.randn / normal_(mean, std). Like PyTorch, 16 or more values use
    /// the blocked float Box-Muller (all uniforms first, then pairs j / j+8 of each block of 16, the tail redrawn as
    /// one last block that overlaps the previous one); fewer than 16 use the double sampler value by value.
    /// </summary>
    public void FillNormal(Span<float> dst, float mean = 0f, float std = 1f)
    {
        if (!(std >= 0)) throw new ArgumentException($"FillNormal: std must be >= 0, got {std}");
        int n = dst.Length;
        if (n < 16)
        {
            for (int i = 0; i < n; i++) dst[i] = (float)Math.FusedMultiplyAdd(NextNormalDouble(), std, mean);
            return;
        }
        for (int i = 0; i < n; i++) dst[i] = NextFloat();
        for (int i = 0; i + 16 <= n; i += 16) BoxMuller16(dst.Slice(i, 16), mean, std);
        if (n % 16 != 0)
        {
            var tail = dst.Slice(n - 16, 16);
            for (int i = 0; i < 16; i++) tail[i] = NextFloat();
            BoxMuller16(tail, mean, std);
        }
    }

    private static void BoxMuller16(Span<float> d, float mean, float std)
    {
        for (int j = 0; j < 8; j++)
        {
            float radius = MathF.Sqrt(-2f * CephesMath.Log(1f - d[j]));
            float theta = TwoPi * d[j + 8];
            CephesMath.SinCos(theta, out float sin, out float cos);
            // PyTorch's AVX2 kernel (the one x86-64 machines run) applies std and mean with one fused multiply-add.
            d[j] = MathF.FusedMultiplyAdd(radius * cos, std, mean);
            d[j + 8] = MathF.FusedMultiplyAdd(radius * sin, std, mean);
        }
    }

    private const float TwoPi = (float)(2.0f * Math.PI);

    // ---- state (torch.Generator.get_state / set_state byte layout) ----

    /// <summary>The generator state in PyTorch's 5056-byte get_state() layout, so checkpoints can interoperate.</summary>
    public byte[] GetState()
    {
        var b = new byte[StateBytes];
        var s = b.AsSpan();
        BinaryPrimitives.WriteUInt64LittleEndian(s, _seed);
        BinaryPrimitives.WriteInt32LittleEndian(s[8..], _left);
        BinaryPrimitives.WriteInt32LittleEndian(s[12..], 1); // seeded
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], (ulong)_next);
        for (int i = 0; i < N; i++) BinaryPrimitives.WriteUInt64LittleEndian(s[(StateOffset + 8 * i)..], _state[i]);
        BinaryPrimitives.WriteDoubleLittleEndian(s[NormalYOffset..], _nextDoubleNormal ?? 0.0);
        BinaryPrimitives.WriteInt32LittleEndian(s[NormalValidOffset..], _nextDoubleNormal.HasValue ? 1 : 0);
        BinaryPrimitives.WriteSingleLittleEndian(s[FloatNormalOffset..], _nextFloatNormal ?? 0f);
        s[FloatValidOffset] = (byte)(_nextFloatNormal.HasValue ? 1 : 0);
        return b;
    }

    /// <summary>Restores a state from <see cref="GetState"/> or from PyTorch's torch.Generator.get_state().</summary>
    public void SetState(ReadOnlySpan<byte> s)
    {
        if (s.Length != StateBytes)
            throw new ArgumentException($"SetState: expected a {StateBytes}-byte PyTorch CPU generator state, got {s.Length} bytes");
        int left = BinaryPrimitives.ReadInt32LittleEndian(s[8..]);
        int seeded = BinaryPrimitives.ReadInt32LittleEndian(s[12..]);
        ulong next = BinaryPrimitives.ReadUInt64LittleEndian(s[16..]);
        if (seeded == 0 || left <= 0 || left > N || next > N)
            throw new ArgumentException($"SetState: invalid mt19937 state (seeded={seeded}, left={left}, next={next})");
        _seed = BinaryPrimitives.ReadUInt64LittleEndian(s);
        _left = left;
        _next = (int)next;
        for (int i = 0; i < N; i++) _state[i] = (uint)BinaryPrimitives.ReadUInt64LittleEndian(s[(StateOffset + 8 * i)..]);
        _nextDoubleNormal = BinaryPrimitives.ReadInt32LittleEndian(s[NormalValidOffset..]) != 0
            ? BinaryPrimitives.ReadDoubleLittleEndian(s[NormalYOffset..]) : null;
        _nextFloatNormal = s[FloatValidOffset] != 0 ? BinaryPrimitives.ReadSingleLittleEndian(s[FloatNormalOffset..]) : null;
    }

    // Offsets in the C struct: seed u64, left i32, seeded i32, next u64, state u64[624], normal_x/normal_y/normal_rho
    // f64, normal_is_valid i32 (+4 padding), then next_float_normal_sample f32, its valid flag (+3 padding).
    private const int StateOffset = 24;
    private const int NormalYOffset = StateOffset + 8 * N + 8;
    private const int NormalValidOffset = StateOffset + 8 * N + 24;
    private const int FloatNormalOffset = NormalValidOffset + 8;
    private const int FloatValidOffset = FloatNormalOffset + 4;
}
