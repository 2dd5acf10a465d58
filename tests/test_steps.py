"""The fixed-shape decode steps: compiling them and falling back, the page's compiled generations, and the
weights a step reads (the memory bound). Their numbers against the no-cache reference: tests/test_generate.py."""

import warnings

import pytest
import torch

import model
from app import generation
from app.models import Models
from model import steps
from model.analysis.cost import step_weight_bytes
from model.baseline import load_baseline
from model.blt import is_lookup_table
from model.generate import generate, generate_baseline


def test_a_step_that_cannot_compile_runs_eagerly_and_says_why(monkeypatch):
    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    step = steps.Step(lambda x: x + 1, torch.device("cpu"), compile=True)
    assert step.compiled and not step.ready
    with pytest.warns(UserWarning, match="torch.compile failed .*no C\\+\\+ compiler.*eagerly"):
        assert step(torch.tensor(1)) == 2
    assert not step.compiled and not step.ready
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # it said so once
        assert step(torch.tensor(2)) == 3


def test_a_compiled_step_calls_its_graph_past_dynamo_while_its_guards_pass():
    """After its first calls a compiled CPU step runs dynamo's compiled bytecode itself; an input its guards
    reject (a new shape) goes through dynamo, which compiles again, and the new version is called directly too."""
    step = steps.Step(lambda x: x * 2 + 1, torch.device("cpu"), compile=True)
    graph_calls = []
    real_versions = steps.compiled_versions

    def counted(fn):
        versions = real_versions(fn)
        return [(guards, lambda *a, g=g: graph_calls.append(1) or g(*a)) for guards, g in versions]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(steps, "compiled_versions", counted)
        for _ in range(3):
            assert torch.equal(step(torch.arange(3.0)), torch.tensor([1.0, 3.0, 5.0]))
        assert step.ready and len(step._direct) == 1 and len(graph_calls) == 1  # the 3rd call, past dynamo
        assert torch.equal(step(torch.arange(5.0)), torch.arange(5.0) * 2 + 1)  # guards fail: dynamo compiles
        assert len(step._direct) == 2 and len(graph_calls) == 1
        assert torch.equal(step(torch.arange(7.0)), torch.arange(7.0) * 2 + 1)
        assert len(graph_calls) == 2  # a symbolic length now: the newest version takes it

    class Blind:  # guards that accept nothing: a torch whose guards cannot be checked from outside dynamo
        def check(self, frame):
            return False

    step = steps.Step(lambda x: x - 1, torch.device("cpu"), compile=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(steps, "compiled_versions", lambda fn: [(Blind(), fn)])
        for i in range(4):
            assert torch.equal(step(torch.arange(3.0) + i), torch.arange(3.0) + i - 1)
        assert step._direct is None  # every call through dynamo, the direct calls given up for good


def test_compiling_prints_no_autotuning_tables(capfd, recwarn):
    """Inductor times its GEMM kernels against BLAS for each product (max_autotune) and would write a table of
    the timings to stderr for each: 13-17 for the shipped BLT, in the terminal of anyone running the app, and
    warn that its timing code uses TypedStorage. Without inductor's caches, so that it compiles and times afresh."""
    linear = torch.nn.Linear(64, 96).eval()
    step = steps.Step(linear.forward, torch.device("cpu"), compile=True)
    x = torch.randn(1, 64)
    with torch.no_grad(), torch._inductor.config.patch(fx_graph_cache=False, autotune_local_cache=False):
        torch.testing.assert_close(step(x), linear(x))
    assert step.ready
    err = capfd.readouterr().err
    assert "AUTOTUNE" not in err and "Autotune Choices" not in err, err
    assert not [w for w in recwarn if "TypedStorage" in str(w.message)]


def graphs(step):
    """The InductorGraphs that a compiled step's direct calls run."""
    return [g for _, version in step._direct for g in version.__globals__.values() if isinstance(g, steps.InductorGraph)]


def test_a_direct_call_skips_aots_wrappers_unless_they_have_work_after_the_graph():
    """A step that writes a cache in place, or reads frozen weights, runs inductor's graph itself
    (steps.InductorGraph); one whose output aliases an input keeps AOT autograd's forward, which rebuilds it."""
    cpu = torch.device("cpu")

    def write(x, cache):
        cache[1:2].copy_(x[:1])
        return x * 2

    step, cache = steps.Step(write, cpu, compile=True), torch.zeros(3)
    for i in range(3):
        assert torch.equal(step(torch.tensor([i + 1.0, 0.0]), cache), torch.tensor([2.0 * (i + 1), 0.0]))
        assert torch.equal(cache, torch.tensor([0.0, i + 1.0, 0.0]))  # the 3rd call's write too
    assert len(graphs(step)) == 1

    class Affine(torch.nn.Linear):
        def step(self, x):  # a model's step method, as model/ writes them
            return self(x) + 1

    layer, x = Affine(4, 3), torch.randn(2, 4)
    step = steps.Step(layer.step, cpu, compile=True)
    with torch.no_grad():  # as generation runs: the weights are frozen into the graph
        for _ in range(3):
            assert torch.allclose(step(x), layer(x) + 1, atol=1e-6)
    assert len(graphs(step)) == 1

    def alias(x):
        return x.view(-1), x + 1

    step, x = steps.Step(alias, cpu, compile=True), torch.arange(4.0).view(2, 2)
    for _ in range(3):
        flat, plus = step(x)
        assert flat.data_ptr() == x.data_ptr() and torch.equal(plus, x + 1)
    assert step._direct and not graphs(step)


def test_where_torch_compile_is_used(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(steps.shutil, "which", lambda name: None)
    assert not steps.can_compile(cpu)  # inductor needs a C++ compiler on a CPU
    monkeypatch.setattr(steps.shutil, "which", lambda name: "/usr/bin/g++")
    assert steps.can_compile(cpu)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert not steps.can_compile(cpu) and not steps.can_compile(torch.device("cuda"))
    assert steps.compile_options(torch.device("cuda")) == {"triton.cudagraphs": True}
    monkeypatch.setattr(steps, "CPP_WRAPPER", True)  # the default; the tests' small models compile without
    assert steps.compile_options(cpu) == {"cpp_wrapper": True}  # the rest in inductor's config (freezing is decided while tracing)
    assert steps.compile_options(cpu, varying=True) == {"cpp_wrapper": True, "max_autotune_gemm_backends": "CPP"}
    assert torch._inductor.config.freezing and torch._inductor.config.max_autotune
    assert torch._inductor.config.cpp.threads == 1  # OpenMP teams outside the main thread cost more than they give
    assert not torch._inductor.config.size_asserts  # dynamo's guards check the inputs


def test_the_page_compiles_its_models_before_serving_and_then_runs_them(monkeypatch):
    """Models.compile warms up the default pair before it returns (a compile beside a visitor's model call
    breaks that call); the page's next run uses the compiled steps and writes what the eager steps write, byte
    for byte and token for token."""
    blt, (baseline, tokenizer) = model.load_blt(), load_baseline()
    eager = generation.run(blt, baseline, tokenizer, generation.Request("The composer", 40))
    *_, eager_duel = eager
    monkeypatch.setenv("BLT_EXPLORER_COMPILE", "1")
    models = Models(blt=blt, baseline=(baseline, tokenizer))
    assert models.compile()
    assert steps.compiled_ready(blt) and steps.compiled_ready(baseline)
    *_, compiled_duel = generation.run(blt, baseline, tokenizer, generation.Request("The composer", 40))
    assert compiled_duel.blt_bytes == eager_duel.blt_bytes and len(compiled_duel.blt_bytes) == 40
    assert compiled_duel.baseline_bytes == eager_duel.baseline_bytes
    monkeypatch.setenv("BLT_EXPLORER_COMPILE", "0")
    assert not Models(blt=blt, baseline=(baseline, tokenizer)).compile()


def test_weights_a_step_reads():
    """Every parameter is read per byte or per patch, lookup tables one row a lookup; the global transformer
    runs per patch, the entropy model per byte; a tied baseline's head reads the whole embedding matrix."""
    blt = model.load_blt()
    read = step_weight_bytes(blt)
    unread = sum(p.nbytes - p[0].nbytes for n, p in blt.named_parameters() if is_lookup_table(n) or "tok_embeddings" in n)
    assert read["byte"] + read["patch"] == sum(p.nbytes for p in blt.parameters()) - unread
    global_bytes = sum(p.nbytes for p in blt.global_transformer.parameters())
    entropy_bytes = sum(p.nbytes for n, p in blt.entropy_model.named_parameters() if "tok_embeddings" not in n)
    assert global_bytes < read["patch"] and entropy_bytes < read["byte"]
    net, _ = load_baseline()
    assert net.output.weight is net.tok_embeddings.weight
    assert step_weight_bytes(net)["token"] == sum(p.nbytes for p in net.parameters())


def test_generations_on_every_path_write_the_same_bytes(monkeypatch):
    """The shipped pair, sampled with a seed: the batched path (counting FLOPs), eager steps, compiled steps
    (as the page and the CLI compile them: with cpp_wrapper)."""
    monkeypatch.setattr(steps, "CPP_WRAPPER", True)
    blt, (baseline, tokenizer) = model.load_blt(), load_baseline()
    kwargs = dict(temperature=0.8, top_k=40, seed=7)
    blt_runs = [[e.id for e in list(generate(blt, "Über", 30, **kwargs, **path))[1:]]
                for path in ({"count_flops": True}, {}, {"compile": True})]
    assert blt_runs[0] == blt_runs[1] == blt_runs[2]
    base_runs = [[e.id for e in list(generate_baseline(baseline, tokenizer, "Über", 30, **kwargs, **path))[1:]]
                 for path in ({"count_flops": True}, {}, {"compile": True})]
    assert base_runs[0] == base_runs[1] == base_runs[2]
    assert steps.compiled_ready(blt) and steps.compiled_ready(baseline)  # compiled for real, not fallen back to eager
    for step in steps.byte_steps(blt, compile=True):
        assert graphs(step) and all(g.cpp_wrapper for g in graphs(step))  # sizes passed as cached tensors
