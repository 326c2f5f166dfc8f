"""Broken copies of losses and functions, so that each loss test can show it catches them."""
import inspect
import textwrap


def negated(loss_fn):
    """The loss with its sign flipped (the first element, for losses that return a tuple)."""
    def flipped(*args, **kwargs):
        out = loss_fn(*args, **kwargs)
        return (-out[0], out[1]) if isinstance(out, tuple) else -out
    return flipped


def detached(loss_fn):
    """The loss cut from the graph: no gradient reaches anything."""
    def cut(*args, **kwargs):
        out = loss_fn(*args, **kwargs)
        return (out[0].detach(), out[1]) if isinstance(out, tuple) else out.detach()
    return cut


def edited(function, old, new):
    """A copy of ``function`` with ``old`` replaced by ``new`` in its source (the package is untouched)."""
    source = textwrap.dedent(inspect.getsource(function))
    assert old in source, f"mutation site {old!r} not found in {function.__name__}: update this mutant"
    namespace = dict(function.__globals__)
    exec(compile(source.replace(old, new), f"<mutant of {function.__name__}>", "exec"), namespace)
    return namespace[function.__name__]
