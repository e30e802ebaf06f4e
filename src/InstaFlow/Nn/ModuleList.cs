// An indexed container: children are named 0, 1, 2... as in torch.nn.ModuleList.
namespace InstaFlow.Nn;

public sealed class ModuleList : Module
{
    private int _count;

    public T Add<T>(T module) where T : Module => Child((_count++).ToString(System.Globalization.CultureInfo.InvariantCulture), module);

    public int Count => _count;
}
