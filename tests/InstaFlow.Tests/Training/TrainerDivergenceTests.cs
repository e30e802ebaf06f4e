// A loss that turns NaN or infinite mid-run stops the trainer with one user error naming the step and what to try
// (a lower --lr), not an internal exception with a stack trace.
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Training;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Tests.Training;

public sealed class TrainerDivergenceTests
{
    /// <summary>The sum of a 1x1 linear layer's output, multiplied by `poison` from step `from` (0-based) on.</summary>
    private sealed class DivergingObjective(Linear layer, int from, float poison) : ITrainingObjective
    {
        private int _calls;
        public Tensor Loss(TorchGenerator rng)
        {
            var loss = Ops.Sum(layer.Forward(Tensor.Full(1f, 1, 1)), 1);
            return _calls++ >= from ? Ops.MulScalar(loss, poison) : loss;
        }
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void Train_NonFiniteLoss_StopsWithOneLineErrorNamingStepAndLr(float poison)
    {
        var layer = new Linear(1, 1);
        layer.Weight.Value.Span.Fill(0.5f); // a new layer's parameters are uninitialized until Init
        layer.Bias!.Value.Span.Clear();
        var trainer = new Trainer(layer, new DivergingObjective(layer, from: 2, poison), new TrainerOptions { LearningRate = 0.5f, Seed = 1 });
        var e = Assert.Throws<InvalidInputException>(() => trainer.Train(10));
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(e.Message.Contains("diverged at step 3"), e.Message);
        Assert.Contains("lower --lr", e.Message);
        Assert.Equal(2, trainer.Step);
    }
}
