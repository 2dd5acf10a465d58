"""Decode steps at fixed shapes, compiled where that helps.

A cached generator's time per byte went to launching a few hundred small operations, not to arithmetic. Each
`step` method (EntropyModel.step, BLT.encoder_step, LocalDecoder.step, TransformerStack.step) keeps every shape
fixed from byte to byte, on caches that are written in place and never move (on a CPU, attention reads the
slots written so far: a count compiled as a symbol), so torch.compile turns each into one graph: inductor's
fused C++ on a CPU, CUDA graphs on a GPU (gpt-fast's recipe). What a compiled step still pays besides its
weights is measured by benchmarks/bench_step_overhead.py. Where compiling is not possible (no C++ compiler, ZeroGPU,
an operator inductor rejects) the same methods run eagerly: the numbers are the same up to float rounding.
"""

from __future__ import annotations

import os
import shutil
import types
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch._inductor.config
from torch.utils._pytree import tree_map_only

from .baseline import BPEBaseline
from .blt import BLT
from .layers import KVCache


def can_compile(device: torch.device) -> bool:
    """Is torch.compile usable here? Inductor builds C++ on a CPU and needs a compiler; ZeroGPU Spaces
    (SPACES_ZERO_GPU set) do not support torch.compile."""
    if os.environ.get("SPACES_ZERO_GPU"):
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and shutil.which(os.environ.get("CXX", "g++")) is not None


CPU_INDUCTOR = {"freezing": True, "max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN", "cpp.threads": 1,
                "size_asserts": False, "alignment_asserts": False, "scalar_asserts": False,
                "autotune_num_choices_displayed": 0, "max_autotune_report_choices_stats": False}
CPP_WRAPPER = True  # the tests turn it off for most of their small models (tests/conftest.py)


def compile_options(device: torch.device, varying: bool = False) -> dict[str, Any]:
    """torch.compile's options for a decode step on `device`. On a GPU, CUDA graphs (what mode="reduce-overhead"
    sets): one launch a step. On a CPU:
    - the weights are frozen into the graph as constants, which inductor folds (layers.fused_linear's
      concatenations) and packs for its own C++ GEMMs, timed against BLAS (max_autotune): a one-row product must
      read its weights at memory speed, and MKL's do not (AMD EPYC, bf16: 6 GB/s against inductor's 25-30);
    - one thread: OpenMP teams gain little on one-row products and lose much outside the main thread, where a
      server runs generations (2-core EPYC, in a worker thread: 4.5-6.2 ms a byte on two threads, 2.0 on one);
    - kernels launched from C++ (`CPP_WRAPPER`) with no size, stride or alignment checks, which dynamo's guards
      have made: a Python wrapper's bytes were slower in 13 of 14 comparisons on two CPUs (by 7 % at the median
      of 8 on the Xeon), for a compile 7 % longer on the shipped BLT but twice as long on tiny test models;
    - a `varying` step (a patch's byte count) uses inductor's GEMMs only: oneDNN, chosen by timing at the first
      count, built a primitive for every count (164 µs a patch for 0.5 MB of weights).
    Freezing is read while dynamo traces, outside torch.compile's options, so `CPU_INDUCTOR` goes into inductor's
    config for the whole process (nothing else here compiles). Autotuning's tables and a deprecation warning of
    inductor's own are silenced: they went to the terminal of anyone running the app."""
    if device.type == "cuda":
        return {"triton.cudagraphs": True}
    for key, value in CPU_INDUCTOR.items():
        setattr(torch._inductor.config, key, value)
    warnings.filterwarnings("ignore", "TypedStorage is deprecated", UserWarning, r"torch\._inductor\.select_algorithm")
    return {"cpp_wrapper": CPP_WRAPPER} | ({"max_autotune_gemm_backends": "CPP"} if varying else {})


def own_code(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` (a method bound to a model) with a code object of its own. Dynamo keeps compiled graphs per code
    object, with guards to tell apart the calls that may share one; with a code object per model, only the
    inputs' shapes can differ, and a step checks nothing else (its weights are frozen into the graph)."""
    bound = isinstance(fn, types.MethodType)
    f = fn.__func__ if bound else fn
    clone = types.FunctionType(f.__code__.replace(), f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    return types.MethodType(clone, fn.__self__) if bound else clone


class Step:
    """A fixed-shape step function, compiled (torch.compile, one graph, `compile_options`) or eager. If
    compiling fails on the first call, it says why and runs eagerly from then on. Shapes that change between
    calls (a cache that grew) compile once more, as symbols. A step whose inputs' dimension 1 changes at every
    call (`varying`: a patch's byte count) takes it as a symbol from the first call. On a CPU, once compiled, a
    call whose inputs pass a version's guards runs that version directly (`compiled_versions`, then
    `graph_under_aot`): in same-process A/Bs of the shipped BLT, bytes 4 % faster in float32 and 6 % in bfloat16
    past dynamo's frame hook, 1.5-4 % more under AOT autograd's wrappers (what dispatch still costs:
    benchmarks/bench_decode.py, (d)). CUDA steps keep dynamo's path, on which their CUDA graphs were verified."""

    def __init__(self, fn: Callable[..., Any], device: torch.device, compile: bool, varying: bool = False):
        self.eager, self.device, self.varying = fn, device, varying
        self.compiled = compile and can_compile(device)
        self.fn = fn
        self._direct: list[tuple[Any, Callable[..., Any]]] | None = []  # (guards, graph) of each compiled version
        if self.compiled:  # its own code, so its guards need only check the tensors' shapes (a guard costs ~80 µs)
            options = compile_options(device, varying) | {"guard_filter_fn": torch.compiler.keep_tensor_guards_unsafe}
            self._traced = own_code(fn)
            self.fn = torch.compile(self._traced, fullgraph=True, options=options)
            bound = isinstance(self._traced, types.MethodType)  # then `self` is an argument its guards read
            code = (self._traced.__func__ if bound else self._traced).__code__
            self._bound = (self._traced.__self__,) if bound else ()
            self._argnames = code.co_varnames[: code.co_argcount]
        self._tried = not self.compiled

    @property
    def ready(self) -> bool:
        """Compiled, and compiled for real: its first call went through."""
        return self.compiled and self._tried

    @property
    def graphs(self) -> bool:
        """Does it run as CUDA graphs? A replay overwrites the outputs of the one before."""
        return self.compiled and self.device.type == "cuda"

    def __call__(self, *args: Any) -> Any:
        if self.graphs:  # the caller keeps outputs (entropies, encoder states) past the next replay: copies
            torch.compiler.cudagraph_mark_step_begin()
            return tree_map_only(torch.Tensor, torch.clone, self._run(*args))
        return self._run(*args)

    def _run(self, *args: Any) -> Any:
        if self._direct:
            frame = self._locals(args)
            for guards, graph in self._direct:
                if guards.check(frame):
                    return graph(*args)
        if self.compiled:  # what varies from call to call, symbolic when dynamo traces it: one graph for all
            mark_symbolic(args, self.varying)
        if self._tried:
            out = self.fn(*args)  # through dynamo, which compiles anew where no version's guards pass
            if self._direct is not None and self.compiled and self.device.type == "cpu":
                self._direct = self._versions(args)
            return out
        try:
            out = self.fn(*args)
        except Exception as e:  # noqa: BLE001 - any compiler failure: the eager step computes the same
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); running the step eagerly", stacklevel=2)
            self.fn, self.compiled = self.eager, False
            out = self.fn(*args)
        self._tried = True
        return out

    def _versions(self, args: tuple[Any, ...]) -> list[tuple[Any, Callable[..., Any]]] | None:
        """The compiled versions to call directly after dynamo ran `args`, or None for good where no version's
        guards accept those very inputs (a torch whose guards cannot be checked this way)."""
        versions, frame = compiled_versions(self._traced), self._locals(args)
        return versions if any(guards.check(frame) for guards, _ in versions) else None

    def _locals(self, args: tuple[Any, ...]) -> dict[str, Any]:
        """The step function's arguments by name, as its guards read them."""
        return dict(zip(self._argnames, self._bound + args))


def mark_symbolic(args: tuple[Any, ...], varying: bool) -> None:
    """Mark for dynamo the sizes a step takes as symbols: the count of slots a CPU step's caches read
    (KVCache.slots_to_read: one view shared by a stack's caches), and dimension 1 of every tensor of a `varying`
    step. Only calls that dynamo traces need it: direct calls skip it (a few µs a step)."""
    if varying:
        tree_map_only(torch.Tensor, lambda t: torch._dynamo.maybe_mark_dynamic(t, 1), args)
    for arg in args:
        cache = arg[0] if isinstance(arg, list) and arg else arg
        if isinstance(cache, KVCache) and cache.read is not None and cache.read.device.type == "cpu":
            torch._dynamo.maybe_mark_dynamic(cache.read, 0)


def compiled_versions(fn: Callable[..., Any]) -> list[tuple[Any, Callable[..., Any]]]:
    """dynamo's compiled versions of `fn` (a function or bound method with code of its own), newest first, each
    as (its guards, its bytecode as a function). That bytecode takes the step's tensors from its arguments and
    calls the graph; called directly, with the graph unwrapped from the hook that keeps dynamo out of it (none
    is set outside a compiled frame) and from AOT autograd's wrappers (`graph_under_aot`), a call skips dynamo's
    frame machinery: on a 2-core EPYC a one-add step takes 6 µs back to back instead of 18, and 25 instead of
    57 after 24 MB of other reads (benchmarks/bench_step_overhead.py). A torch without these internals gets
    none: every call goes through dynamo."""
    bound = isinstance(fn, types.MethodType)
    f = fn.__func__ if bound else fn
    try:
        versions = []
        for entry in torch._dynamo.eval_frame._debug_get_cache_entry_list(f.__code__):
            names = {n: f.__globals__[n] for n in entry.code.co_names if n in f.__globals__}
            names = {n: graph_under_aot(v._torchdynamo_orig_callable) if getattr(v, "_torchdynamo_disable", False)
                     else v for n, v in names.items()} | {"__builtins__": f.__globals__["__builtins__"]}
            graph = types.FunctionType(entry.code, names, f.__name__, f.__defaults__, f.__closure__)
            versions.append((entry.guard_manager, types.MethodType(graph, fn.__self__) if bound else graph))
        return versions
    except AttributeError:
        return []


def _closure(fn: Callable[..., Any]) -> dict[str, Any]:
    return {name: cell.cell_contents for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ())}


class InductorGraph:
    """An inference graph that inductor built, called with the step's tensors as dynamo's bytecode passes them:
    AOT autograd's wrappers around it are skipped, since for a decode step they have nothing to do but bump
    the version counters of the caches written, which only autograd reads (steps run without it). In two
    same-process A/Bs of the shipped BLT (6 alternating rounds of 200 bytes) bfloat16 bytes were 4 and 1.5 %
    faster (1.45 → 1.39 and 1.37 → 1.35 ms), float32 1.6 % (2.53 → 2.49)."""

    def __init__(self, graph: Callable[[list[Any]], Any], kept: list[int] | None, cpp_wrapper: bool):
        self.graph, self.kept = graph, kept  # its inputs: dynamo's at `kept` (weights frozen out), or all
        self.cpp_wrapper = cpp_wrapper

    def __call__(self, *inputs: Any) -> Any:
        args = list(inputs) if self.kept is None else [inputs[i] for i in self.kept]
        if self.cpp_wrapper:  # its Python glue makes a tensor of each number (a symbolic size): ~2.5 µs apiece
            args = [x if type(x) is not int else int_tensor(x) for x in args]
        return self.graph(args)


_INT_TENSORS: dict[int, torch.Tensor] = {}


def int_tensor(n: int) -> torch.Tensor:
    """n as a 0-d CPU tensor, made once: a C++ wrapper reads its symbolic sizes from such tensors and never
    writes them. A step's sizes are slot and byte counts, a few thousand values at most."""
    t = _INT_TENSORS.get(n)
    if t is None:
        t = _INT_TENSORS[n] = torch.tensor(n)
    return t


def graph_under_aot(compiled: Callable[..., Any]) -> Callable[..., Any]:
    """`compiled` (AOT autograd's forward, which dynamo's bytecode calls) as an InductorGraph, or itself where
    its runtime wrapper has work to do after the graph (copy mutations back to inputs, rebuild outputs that
    alias inputs) or its layers are not those of torch 2.13, where this was written."""
    try:
        forward = _closure(compiled)
        weights, runtime = forward["params_buffers_flat"], _closure(forward["compiled_fn"])
        if set(runtime["_codegen_runtime_wrapper"].__globals__) - {"__builtins__", "torch", "_increment_version_"}:
            return compiled  # an epilogue: _apply_mutations_, _replay_aliases_, _mark_dynamic_
        inner = runtime["_inner_compiled_fn"]
        if hasattr(inner, "current_callable"):  # nothing frozen: the graph takes the weights, then dynamo's inputs
            return compiled if weights else InductorGraph(inner.current_callable, None, _cpp_wrapper(inner))
        frozen = _closure(inner)  # compile_fx's wrapper, which drops the weights that freezing made constants
        offsets, last = frozen["unwrapped_args_offsets"], frozen["max_offset_idx"]
        kept = [i - offsets[min(i, last)] - len(weights) for i in frozen["preserved_arg_indices"]]
        graph = frozen["optimized_function"]
    except (KeyError, AttributeError, TypeError, IndexError):
        return compiled
    return InductorGraph(graph.current_callable, kept, _cpp_wrapper(graph)) if min(kept, default=0) >= 0 else compiled


def _cpp_wrapper(graph: Any) -> bool:
    """Does inductor's compiled graph launch its kernels from C++ (a pybind entry point its module loads)?"""
    return "load_pybinding" in getattr(graph, "source_code", "")


class ByteSteps:
    """A BLT's steps in generation: per byte the entropy model, the hash embeddings with the local encoder and
    the local decoder; per patch the local encoder's pooling of its bytes into slots, then the global transformer
    with the decoder's keys and values of its slots. The pooling's byte count varies from patch to patch: on a
    GPU it runs eagerly (CUDA graphs would record a graph per count; a patch's few launches cost little there)."""

    def __init__(self, blt: BLT, compile: bool = False):
        device = next(blt.parameters()).device
        em = blt.entropy_model
        self.entropy = None if em is None else Step(em.step, device, compile)
        self.encode = Step(blt.encoder_step, device, compile)
        self.pool = Step(blt.local_encoder.patch_step, device, compile and device.type == "cpu", varying=True)
        self.patch = Step(blt.patch_step, device, compile)
        self.decode = Step(blt.local_decoder.step, device, compile)

    @property
    def compiled(self) -> bool:
        return self.encode.compiled

    def __iter__(self) -> Iterator[Step]:
        """Its steps, the entropy model's where there is one."""
        return (s for s in (self.entropy, self.encode, self.pool, self.patch, self.decode) if s is not None)

    @property
    def ready(self) -> bool:
        return all(s.ready for s in self)


_COMPILED: weakref.WeakKeyDictionary[torch.nn.Module, Any] = weakref.WeakKeyDictionary()


def byte_steps(blt: BLT, compile: bool) -> ByteSteps:
    """The BLT's steps; compiled ones are made once per model and shared by its generations."""
    if not compile:
        return ByteSteps(blt)
    if blt not in _COMPILED:
        _COMPILED[blt] = ByteSteps(blt, compile=True)
    return _COMPILED[blt]


def token_step(model: BPEBaseline, compile: bool) -> Step:
    """The baseline's one-token step (BPEBaseline.step), compiled once per model when asked."""
    if not compile:
        return Step(model.step, next(model.parameters()).device, False)
    if model not in _COMPILED:
        _COMPILED[model] = Step(model.step, next(model.parameters()).device, True)
    return _COMPILED[model]


def compiled_ready(model: torch.nn.Module) -> bool:
    """Has `model` (a BLT or a baseline) compiled steps that have run? Then a generation with compile=True
    starts at once; before, its first steps would wait for the compiler."""
    steps = _COMPILED.get(model)
    return steps is not None and steps.ready
