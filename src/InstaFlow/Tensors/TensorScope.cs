// Deterministic lifetime for temporaries: every tensor created while a scope is open is disposed (its memory
// returned to the pool) when the scope ends, unless it was kept. One scope per step keeps memory flat.
namespace InstaFlow.Tensors;

public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? _current;

    private readonly TensorScope? _parent;
    private readonly List<Tensor> _owned = new();
    private bool _disposed;

    private TensorScope() { _parent = _current; _current = this; }

    public static TensorScope Begin() => new();

    /// <summary>
    /// A scope for one block's temporaries at inference (nothing recorded), or null while gradients are recorded,
    /// when the tape still needs them. Use as `using var s = TensorScope.ForInference(); ... return s.KeepOrSelf(y);`.
    /// </summary>
    public static TensorScope? ForInference() => Autograd.GradMode.IsEnabled ? null : new();

    internal static void Register(Tensor t) => _current?._owned.Add(t);

    /// <summary>Moves t out of this scope into the enclosing one (or makes it unowned) and returns it.</summary>
    public Tensor Keep(Tensor t)
    {
        // Search from the end: kept tensors are usually the most recent.
        int i = _owned.LastIndexOf(t);
        if (i >= 0) _owned.RemoveAt(i);
        _parent?._owned.Add(t);
        return t;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_current != this) throw new InvalidOperationException("TensorScope disposed out of order: nested scopes must end innermost first.");
        _current = _parent;
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
    }
}

public static class TensorScopeExtensions
{
    /// <summary>Keeps t when there is a scope (see <see cref="TensorScope.ForInference"/>), and returns it either way.</summary>
    public static Tensor KeepOrSelf(this TensorScope? scope, Tensor t) => scope == null ? t : scope.Keep(t);
}
