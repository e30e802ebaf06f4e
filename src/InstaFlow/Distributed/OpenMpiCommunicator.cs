// MPI_COMM_WORLD of the system's Open MPI (libmpi.so.40, Debian's openmpi-bin + libopenmpi-dev) through its C API.
// Not MPI.NET: its NuGet build (1.4.0) P/Invokes "msmpi.dll" and uses MS-MPI's integer handles (MPI_COMM_WORLD is
// 0x44000000 there), while Open MPI's handles are addresses of global symbols; run under mpirun here it fails with
// DllNotFoundException for msmpi.dll, and renaming the library would not fix the handle ABI.
using System.Runtime.InteropServices;

namespace InstaFlow.Distributed;

/// <summary>Open MPI's world communicator; one per process (MPI can be initialised only once).</summary>
public sealed unsafe class OpenMpiCommunicator : ICommunicator
{
    /// <summary>The soname Debian's libopenmpi3 ships (Open MPI 4.x).</summary>
    public const string LibraryName = "libmpi.so.40";

    private const int RtldNow = 2, RtldGlobal = 0x100;
    // MPI_IN_PLACE in Open MPI's mpi.h.
    private static readonly void* InPlace = (void*)1;
    // Counts are C ints; large buffers go in pieces of this many elements.
    private const int MaxCount = 1 << 30;

    private readonly nint _commWorld, _float, _byte, _sum;
    private readonly delegate* unmanaged<void*, void*, int, nint, nint, nint, int> _allreduce;
    private readonly delegate* unmanaged<void*, int, nint, int, nint, int> _bcast;
    private readonly delegate* unmanaged<nint, int> _barrier;
    private readonly delegate* unmanaged<nint, int, int> _abort;
    private readonly delegate* unmanaged<int> _finalize;
    private static int _created;
    private bool _disposed;

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern nint DlOpen(string file, int mode);

    [DllImport("libc", EntryPoint = "dlerror")]
    private static extern nint DlError();

    private OpenMpiCommunicator(nint lib)
    {
        nint Sym(string name) => NativeLibrary.GetExport(lib, name);
        // Open MPI's predefined handles are the addresses of these objects (mpi.h: #define MPI_COMM_WORLD
        // OMPI_PREDEFINED_GLOBAL(MPI_Comm, ompi_mpi_comm_world)).
        _commWorld = Sym("ompi_mpi_comm_world");
        _float = Sym("ompi_mpi_float");
        _byte = Sym("ompi_mpi_byte");
        _sum = Sym("ompi_mpi_op_sum");
        _allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Sym("MPI_Allreduce");
        _bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Sym("MPI_Bcast");
        _barrier = (delegate* unmanaged<nint, int>)Sym("MPI_Barrier");
        _abort = (delegate* unmanaged<nint, int, int>)Sym("MPI_Abort");
        _finalize = (delegate* unmanaged<int>)Sym("MPI_Finalize");
        var init = (delegate* unmanaged<int*, byte***, int>)Sym("MPI_Init");
        var rank = (delegate* unmanaged<nint, int*, int>)Sym("MPI_Comm_rank");
        var size = (delegate* unmanaged<nint, int*, int>)Sym("MPI_Comm_size");
        Check(init(null, null), "MPI_Init");
        int r, s;
        Check(rank(_commWorld, &r), "MPI_Comm_rank");
        Check(size(_commWorld, &s), "MPI_Comm_size");
        Rank = r; Size = s;
    }

    /// <summary>Loads Open MPI and calls MPI_Init; throws InvalidInputException when the library is not installed.</summary>
    public static OpenMpiCommunicator Initialize()
    {
        if (!OperatingSystem.IsLinux()) throw new InvalidInputException("MPI training needs Linux with Open MPI (libmpi.so.40)");
        if (Interlocked.Exchange(ref _created, 1) != 0) throw new InvalidOperationException("MPI is already initialised in this process");
        // RTLD_GLOBAL: Open MPI loads its components (mca_*.so) with dlopen and they resolve symbols of libmpi itself,
        // which fails when libmpi was opened locally, as NativeLibrary.Load does.
        nint lib = DlOpen(LibraryName, RtldNow | RtldGlobal);
        if (lib == 0)
        {
            _created = 0;
            string why = Marshal.PtrToStringUTF8(DlError()) ?? "unknown error";
            throw new InvalidInputException($"started by an MPI launcher but Open MPI's {LibraryName} could not be loaded ({why}); install it, e.g. apt-get install openmpi-bin libopenmpi-dev");
        }
        return new OpenMpiCommunicator(lib);
    }

    public int Rank { get; }
    public int Size { get; }

    public void AllReduceSum(Span<float> data)
    {
        fixed (float* p = data)
            for (int start = 0; start < data.Length; start += MaxCount)
                Check(_allreduce(InPlace, p + start, Math.Min(MaxCount, data.Length - start), _float, _sum, _commWorld), "MPI_Allreduce");
    }

    public void Broadcast(Span<byte> data, int root = 0)
    {
        fixed (byte* p = data)
            for (int start = 0; start < data.Length; start += MaxCount)
                Check(_bcast(p + start, Math.Min(MaxCount, data.Length - start), _byte, root, _commWorld), "MPI_Bcast");
    }

    public void Broadcast(Span<float> data, int root = 0)
    {
        fixed (float* p = data)
            for (int start = 0; start < data.Length; start += MaxCount)
                Check(_bcast(p + start, Math.Min(MaxCount, data.Length - start), _float, root, _commWorld), "MPI_Bcast");
    }

    public void Barrier() => Check(_barrier(_commWorld), "MPI_Barrier");

    public void Abort(int exitCode)
    {
        _abort(_commWorld, exitCode);
        Environment.Exit(exitCode);
    }

    /// <summary>MPI_Finalize (a collective: every rank must reach it).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Check(_finalize(), "MPI_Finalize");
    }

    // With MPI_COMM_WORLD's default handler (MPI_ERRORS_ARE_FATAL) a failing call aborts the job before returning;
    // this only catches a non-default handler.
    private static void Check(int code, string call)
    {
        if (code != 0) throw new InvalidOperationException($"{call} failed with MPI error code {code}");
    }
}
