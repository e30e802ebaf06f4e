// A small MLP velocity network for low-dimensional flows: [x, sinusoidal(time)] -> hidden SiLU layers -> velocity.
// The time features are the UNet's (diffusers' get_timestep_embedding, [cos, sin]), the one sinusoidal embedding.
using InstaFlow.Flow;
using InstaFlow.Models.Unet;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Experiments;

public sealed class MlpVelocity : Module, IVelocityModel
{
    private readonly Linear[] _layers;
    private readonly int _timeDim;
    private readonly float _timeScale;

    /// <param name="dim">Size of a point (2 for the toy experiment).</param>
    /// <param name="hidden">Width of the hidden layers.</param>
    /// <param name="depth">Number of hidden layers.</param>
    /// <param name="timeDim">Size of the sinusoidal time embedding.</param>
    /// <param name="timeScale">Multiplies the network time before embedding; use ~1000 when it lies in [0, 1].</param>
    public MlpVelocity(int dim, int hidden, int depth, int timeDim = 16, float timeScale = 1f)
    {
        if (depth < 1) throw new ArgumentException($"MLP depth must be at least 1, got {depth}");
        _timeDim = timeDim; _timeScale = timeScale;
        _layers = new Linear[depth + 1];
        for (int i = 0; i <= depth; i++)
            _layers[i] = Child($"layers.{i}", new Linear(i == 0 ? dim + timeDim : hidden, i == depth ? dim : hidden));
    }

    public Tensor Forward(Tensor x, Tensor modelTime, Tensor? cond)
    {
        if (cond != null) throw new ArgumentException("MlpVelocity is unconditional but was given a condition");
        var h = Ops.Concat([x, TimestepEmbedding.Sinusoidal(Scaled(modelTime), _timeDim, flipSinToCos: true, freqShift: 0)], 1);
        for (int i = 0; i < _layers.Length - 1; i++) h = Ops.Silu(_layers[i].Forward(h));
        return _layers[^1].Forward(h);
    }

    private float[] Scaled(Tensor modelTime) => modelTime.ToArray().Select(t => t * _timeScale).ToArray();
}
