// A tiny UNet-like conv velocity net (conv, GroupNorm, SiLU, time embedding, one down/up level with a skip) trained
// with the rectified-flow trainer on 8x8 bar images: the loss must fall within a few seconds.
using InstaFlow.Flow;
using InstaFlow.Models.Unet;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;
using InstaFlow.Training;

namespace InstaFlow.Tests.Flow;

public class ConvFlowTests
{
    private sealed class TinyConvNet : Module, IVelocityModel
    {
        private readonly Conv2d _in, _down, _up, _out;
        private readonly GroupNorm _n1, _n2, _n3;
        private readonly Linear _time;

        public TinyConvNet()
        {
            _in = Child("conv_in", new Conv2d(1, 8, 3, padding: 1));
            _time = Child("time_proj", new Linear(16, 8));
            _n1 = Child("norm1", new GroupNorm(4, 8, 1e-5f));
            _down = Child("down", new Conv2d(8, 16, 3, stride: 2, padding: 1));
            _n2 = Child("norm2", new GroupNorm(4, 16, 1e-5f));
            _up = Child("up", new Conv2d(24, 8, 3, padding: 1));
            _n3 = Child("norm3", new GroupNorm(4, 8, 1e-5f));
            _out = Child("conv_out", new Conv2d(8, 1, 3, padding: 1));
        }

        public Tensor Forward(Tensor x, Tensor modelTime, Tensor? cond)
        {
            var temb = _time.Forward(TimestepEmbedding.Sinusoidal(modelTime.ToArray(), 16, flipSinToCos: true, freqShift: 0)).Reshape(x.Dim(0), 8, 1, 1);
            var skip = Ops.Silu(_n1.Forward(Ops.Add(_in.Forward(x), temb)));
            var low = Ops.Silu(_n2.Forward(_down.Forward(skip)));
            var h = Ops.Silu(_n3.Forward(_up.Forward(Ops.Concat([Ops.UpsampleNearest2x(low), skip], 1))));
            return _out.Forward(h);
        }
    }

    // Background -1 with one bright (+1) horizontal or vertical bar at a random row/column.
    private static (Tensor, Tensor?) Bars(TorchGenerator rng, int n)
    {
        var x = Tensor.Full(-1f, n, 1, 8, 8);
        for (int b = 0; b < n; b++)
        {
            bool vertical = (rng.NextUInt64() & 1) == 1;
            int at = (int)(rng.NextUInt64() % 8);
            for (int i = 0; i < 8; i++) x[b, 0, vertical ? i : at, vertical ? at : i] = 1f;
        }
        return (x, null);
    }

    [Fact]
    public void Trainer_TinyConvNetOnBars_LossFalls()
    {
        var net = new TinyConvNet();
        net.InitDefault(0);
        var flow = new FlowModel(net, FlowConvention.InstaFlow);
        var objective = new RectifiedFlowObjective(flow, new IndependentCoupling([1, 8, 8], Bars), new UniformTime(), 16);
        var trainer = new Trainer(net, objective, new TrainerOptions { LearningRate = 5e-3f, WarmupSteps = 5, Seed = 3, MaxGradNorm = 1f });
        var losses = new List<float>();
        for (int s = 1; s <= 120; s++) { trainer.Train(s); losses.Add(trainer.LastLoss); }
        float first = losses.Take(10).Average(), last = losses.TakeLast(10).Average();
        Assert.True(last < 0.7f * first, $"loss did not fall enough: first-10 mean {first}, last-10 mean {last}");
    }
}
