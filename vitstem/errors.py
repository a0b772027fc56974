"""The errors vitstem raises for bad input; anything else escaping is a bug."""


class VitstemError(Exception):
    """Base of every user-facing vitstem error (the CLI prints it and exits 2)."""


class SpecError(VitstemError, ValueError):
    """A spec is invalid. `problems` lists every (field path, reason) found at once."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [("", problems)]
        self.problems = [(str(path), str(reason)) for path, reason in problems]
        super().__init__("; ".join(f"{p}: {r}" if p else r for p, r in self.problems))


class WeightsError(VitstemError, ValueError):
    """A weight file or mapping does not match the spec (name, shape, dtype, finiteness, format)."""


class InputError(VitstemError, ValueError):
    """An input batch does not match the spec (rank, dtype, layout, channels, size, finiteness)."""


class ExportError(VitstemError, ValueError):
    """A model cannot be exported as asked (an option the graph cannot express, a bad path)."""


class ProviderError(VitstemError, ValueError):
    """An execution provider was asked for that this onnxruntime build does not have (or could not start)."""
