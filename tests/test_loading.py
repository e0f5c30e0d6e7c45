"""lab.models.load_model: folders load fast and exactly; a hub id that cannot be reached fails fast, once."""

import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from lab import hub, models
from lab.models import load_model

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo-model"
IDS = torch.tensor([[5, 6, 7, 8]])


def reference(folder: Path) -> torch.Tensor:
    with torch.inference_mode():
        return AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()(IDS).logits


def student_copy(tmp_path: Path, name: str, seed: int) -> Path:
    """The demo model's folder with other weights: another student's run of the same shape."""
    folder = tmp_path / name
    shutil.copytree(DEMO, folder)
    state = load_file(folder / "model.safetensors")
    g = torch.Generator().manual_seed(seed)
    save_file({k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in state.items()}, folder / "model.safetensors")
    return folder


def test_folders_of_a_known_shape_load_as_copies_with_their_own_weights(tmp_path):
    first, second = student_copy(tmp_path, "ann", 1), student_copy(tmp_path, "bob", 2)
    a, _ = load_model(first)
    b, _ = load_model(second)  # same config as ann's: a copy of a loaded model with bob's weights
    assert models._TEMPLATES and b is not a
    with torch.inference_mode():
        torch.testing.assert_close(a(IDS).logits, reference(first))
        torch.testing.assert_close(b(IDS).logits, reference(second))
    assert b.lm_head.weight.data_ptr() == b.transformer.wte.weight.data_ptr()  # still tied
    assert b.config._name_or_path == str(second) and not b.training
    with torch.no_grad():  # changing one loaded model changes no other, nor later loads
        b.transformer.wte.weight.zero_()
    with torch.inference_mode():
        torch.testing.assert_close(load_model(first)[0](IDS).logits, reference(first))


def test_a_folder_whose_tensors_do_not_fit_the_known_shape_loads_the_slow_way(tmp_path):
    load_model(DEMO)  # the shape is known
    odd = student_copy(tmp_path, "odd", 3)
    state = load_file(odd / "model.safetensors")
    state["transformer.extra"] = torch.zeros(2)  # a tensor this architecture does not have
    save_file(state, odd / "model.safetensors")
    assert not models._fits(models._TEMPLATES[next(iter(models._TEMPLATES))], state)
    model, _ = load_model(odd)  # from_pretrained: drops what it does not know, as it always did
    with torch.inference_mode():
        torch.testing.assert_close(model(IDS).logits, reference(odd))


@pytest.mark.parametrize("known_shape", [False, True])  # from_pretrained, or a copy of a model of that config
def test_a_weights_file_cut_short_or_of_other_shapes_is_refused_in_one_sentence(tmp_path, known_shape):
    models._TEMPLATES.clear()
    if known_shape:
        load_model(DEMO)
    cut = student_copy(tmp_path, "cut", 4)  # a copy that stopped half way
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    wide = student_copy(tmp_path, "wide", 5)  # config.json says one shape, the tensors have another
    (wide / "config.json").write_text((wide / "config.json").read_text().replace('"hidden_size": 64', '"hidden_size": 128'))
    for folder in (cut, wide):
        with pytest.raises(ValueError, match="its weights do not load"):
            load_model(folder)


@pytest.mark.parametrize("known_shape", [False, True])
def test_a_weights_file_without_every_tensor_is_refused_not_filled_with_random_numbers(tmp_path, known_shape):
    models._TEMPLATES.clear()
    if known_shape:
        load_model(DEMO)
    part = student_copy(tmp_path, "part", 7)
    state = load_file(part / "model.safetensors")
    save_file({k: v for k, v in state.items() if ".h.1." not in k}, part / "model.safetensors")  # no layer 1
    with pytest.raises(ValueError, match=r"lacks \d+ of the model's tensors \(transformer\.h\.1\."):
        load_model(part)


def test_a_folder_without_a_tokenizer_or_with_one_of_another_model_is_refused(tmp_path):
    bare = student_copy(tmp_path, "bare", 6)  # transformers 5 made an empty tokenizer from config.json: no tokens
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (bare / name).unlink()
    with pytest.raises(ValueError, match="no usable tokenizer"):
        load_model(bare)
    small = tmp_path / "small-vocabulary"  # 300 token embeddings, the demo's 2,048-token tokenizer
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=32, n_embd=16, n_layer=1, n_head=2)).save_pretrained(small)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(DEMO / name, small)
    with pytest.raises(ValueError, match="2048 tokens do not fit the model's 300 token embeddings"):
        load_model(small)  # before: an IndexError on every page's first text


def test_a_class_opening_its_runs_at_once_builds_one_model_and_shares_one_tokenizer(tmp_path, monkeypatch):
    folders = [student_copy(tmp_path, f"s{n}", 10 + n) for n in range(6)]
    (folders[5] / "config.json").write_text((folders[5] / "config.json").read_text().replace("{", '{"_x": 1,', 1))
    models._TEMPLATES.clear()
    built, slow = [], models._from_pretrained

    def counted(folder):
        built.append(folder.name)
        time.sleep(0.3)  # a slow build: the other threads arrive while it runs
        return slow(folder)

    monkeypatch.setattr(models, "_from_pretrained", counted)
    with ThreadPoolExecutor(len(folders)) as pool:
        loaded = list(pool.map(load_model, folders))
    assert len(built) == 2 and "s5" in built  # one build per config (before: one per folder), whoever came first
    with torch.inference_mode():
        for folder, (model, _) in zip(folders, loaded):
            torch.testing.assert_close(model(IDS).logits, reference(folder))
    tokenizers = {id(tok) for _, tok in loaded}
    assert len(tokenizers) == 1  # identical tokenizer files: one object
    other = tmp_path / "other-tokenizer"
    shutil.copytree(folders[0], other)
    (other / "tokenizer_config.json").write_text((other / "tokenizer_config.json").read_text().replace("{", '{"_y": 2,', 1))
    assert load_model(other)[1] is not loaded[0][1]  # a different file: its own tokenizer


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_hub_id_fails_in_one_sentence_under_two_seconds_and_is_not_asked_again(monkeypatch):
    from huggingface_hub import HfApi, constants

    # "Online", but the hub is a closed port on this machine: what an offline classroom server sees. Without the
    # short look-up, huggingface_hub retried for ~24 s on every page that asked.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    asked = []
    real = HfApi.model_info
    monkeypatch.setattr(HfApi, "model_info", lambda self, *a, **kw: asked.append(a) or real(self, *a, **kw))
    hub._HUB_FAILURES.clear()
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as first:
        load_model("someone/tiny-model")
    assert time.perf_counter() - t0 < 2.0
    message = str(first.value)
    assert message == "'someone/tiny-model' is not a folder on this machine, and the hub (huggingface.co) cannot be reached from it."
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="cannot be reached"):
        load_model("someone/tiny-model")  # the next page: refused at once, the network not asked again
    assert time.perf_counter() - t0 < 0.5 and len(asked) == 1
    monkeypatch.setattr(hub, "FAILURE_MEMORY_S", 0.0)  # after a while it is tried again
    with pytest.raises(ValueError, match="cannot be reached"):
        load_model("someone/tiny-model")
    assert len(asked) == 2


def test_offline_and_malformed_hub_ids_fail_at_once(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub._HUB_FAILURES.clear()
    with pytest.raises(ValueError, match=r"^'someone/other' is not a folder on this machine nor in its hub cache, "
                                         r"and the hub is turned off here \(HF_HUB_OFFLINE\)\.$"):
        load_model("someone/other")
    with pytest.raises(ValueError, match="neither a model folder on this machine nor a hub id"):
        load_model("../no/such//place")


def test_a_hub_id_in_the_hub_cache_loads_offline_from_there_never_from_a_local_folder_of_that_name(
        tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    hub._HUB_FAILURES.clear()
    pickled_main = cache / "models--someone--tiny" / "snapshots" / "a1"  # main: config and a pickle only
    pickled_main.mkdir(parents=True)
    shutil.copy(DEMO / "config.json", pickled_main)
    (pickled_main / "pytorch_model.bin").write_bytes(b"never read")
    converted = student_copy(tmp_path, "converted", seed=3)  # the conversion bot's revision: safetensors
    shutil.copytree(converted, cache / "models--someone--tiny" / "snapshots" / "b2")
    decoy = student_copy(tmp_path / "someone", "tiny", seed=4)  # ./someone/tiny on the server: not the hub's
    assert hub.hub_folder("someone/tiny") == cache / "models--someone--tiny" / "snapshots" / "b2"
    model, _ = load_model("someone/tiny", hub=True)
    with torch.inference_mode():
        assert torch.allclose(model(IDS).logits, reference(converted), atol=1e-5)
        assert not torch.allclose(model(IDS).logits, reference(decoy), atol=1e-3)
