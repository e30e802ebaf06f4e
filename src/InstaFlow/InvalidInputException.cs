// The one exception type for bad input: a file, key, option or request value the user can fix. Its message names the
// file or field and the fix; front ends show it as one line. Anything else thrown by the library is a bug.
namespace InstaFlow;

/// <summary>Bad input the user can fix: a file, a key inside it, an option or a request value.</summary>
public class InvalidInputException(string message, Exception? inner = null) : Exception(message, inner);
