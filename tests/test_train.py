"""Training on a tiny random model: GRPO with dynamic sampling, SFT, checkpoints, configs, eval-steps."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from srl_agent.train.config import (
    ConfigError,
    EvalStepsConfig,
    RLVRTrainConfig,
    SFTTrainConfig,
    SRLTrainConfig,
    load_config,
    parse_overrides,
)
from trajectories.actions import format_answer
from trajectories.schema import ToolCall


def _srl_config(tiny, steps, tmp_path, **kw) -> SRLTrainConfig:
    base = dict(
        model=tiny,
        dataset=steps,
        output_dir=tmp_path / "srl",
        max_steps=1,
        batch_size=2,
        num_generations=2,
        max_completion_length=8,
        report_to=[],
        save_steps=100,
    )
    base.update(kw)
    return SRLTrainConfig(**base)


# -- configs -------------------------------------------------------------------------------------


def test_config_from_yaml_with_overrides(tmp_path):
    f = tmp_path / "srl.yaml"
    f.write_text("lr: 2.0e-6\nnum_generations: 8\nlora:\n  enabled: true\n")
    cfg = load_config(SRLTrainConfig, f, parse_overrides(["lora.r=4", "temperature=0.7", "dataset=/data/x"]))
    assert cfg.lr == 2e-6 and cfg.num_generations == 8 and cfg.temperature == 0.7
    assert cfg.lora.enabled and cfg.lora.r == 4 and str(cfg.dataset) == "/data/x"
    assert cfg.beta == 0.0 and cfg.dynamic_sampling.enabled  # SRL defaults: no KL, dynamic sampling


def test_config_errors_name_the_file_and_the_field(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("num_generation: 4\n")  # typo
    with pytest.raises(ConfigError) as err:
        load_config(SRLTrainConfig, f)
    assert str(f) in str(err.value) and "num_generation" in str(err.value)
    with pytest.raises(ConfigError, match=r"dynamic_sampling\.epsilon"):
        load_config(SRLTrainConfig, None, parse_overrides(["dynamic_sampling.epsilon=-1"]))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(SFTTrainConfig, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])


def test_cli_reports_config_and_task_errors(tmp_path):
    from typer.testing import CliRunner

    from srl_agent.cli import app

    f = tmp_path / "bad.yaml"
    f.write_text("batch_sise: 4\n")
    res = CliRunner().invoke(app, ["train", "srl", "--config", str(f)])
    assert res.exit_code == 2 and "batch_sise" in res.output
    # rlvr resolves its tasks before loading a model: an unknown task is a clear error, not a crash
    res = CliRunner().invoke(app, ["train", "rlvr", "--instance-id", "no__such-1", "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and "unknown task(s) no__such-1" in res.output


# -- dynamic sampling building blocks --------------------------------------------------------------


def test_merge_batches_pads_prompts_left_and_completions_right():
    from srl_agent.train.grpo import merge_batches

    a = {
        "prompt_ids": torch.tensor([[5, 6]]),
        "prompt_mask": torch.tensor([[1, 1]]),
        "completion_ids": torch.tensor([[7]]),
        "completion_mask": torch.tensor([[1]]),
        "advantages": torch.tensor([0.5]),
        "num_items_in_batch": torch.tensor(1),
    }
    b = {
        "prompt_ids": torch.tensor([[4, 5, 6]]),
        "prompt_mask": torch.tensor([[1, 1, 1]]),
        "completion_ids": torch.tensor([[8, 9]]),
        "completion_mask": torch.tensor([[1, 1]]),
        "advantages": torch.tensor([-0.5]),
        "num_items_in_batch": torch.tensor(2),
    }
    m = merge_batches([a, b], pad_token_id=0)
    assert m["prompt_ids"].tolist() == [[0, 5, 6], [4, 5, 6]]
    assert m["prompt_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    assert m["completion_ids"].tolist() == [[7, 0], [8, 9]]
    assert m["completion_mask"].tolist() == [[1, 0], [1, 1]]
    assert m["advantages"].tolist() == [0.5, -0.5]
    with pytest.raises(NotImplementedError, match="pixel_values"):
        merge_batches([{**a, "pixel_values": torch.zeros(1)}], 0)


def test_first_action_prefix_is_the_shortest_prefix_holding_the_stop():
    from srl_agent.train.grpo import first_action_prefix

    pieces = ["<think>", "x", "</think>", "<function=bash>", "</func", "tion>", "\n", "<function=ls>"]
    decode = lambda ids: "".join(pieces[i] for i in ids)  # noqa: E731
    assert first_action_prefix(list(range(8)), decode) == [0, 1, 2, 3, 4, 5]
    assert first_action_prefix([0, 1], decode) == [0, 1]


def test_diagnosis_names_cause_and_remedy():
    from srl_agent.train.grpo import diagnose_flat_groups

    assert "srl train sft" in diagnose_flat_groups([-1.0] * 8, 1e-3)
    assert "already learned" in diagnose_flat_groups([1.0] * 8, 1e-3)
    assert "temperature" in diagnose_flat_groups([0.3] * 8, 1e-3)


# -- GRPO (SRL) ------------------------------------------------------------------------------------


def _scripted_generation(trainer, tok, plan):
    """Replace generation: call k gives group j the answers plan[k][j] (one per generation). The model
    continues the answer prefill that ends every prompt, so it writes each answer without it."""
    from srl_agent.prompts import THINK_PREFILL

    calls = []

    def fake(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        assert all(tok.decode(ids).endswith("assistant\n" + THINK_PREFILL) for ids in prompt_ids)
        k = len(calls)
        calls.append(len(prompt_ids))
        groups = plan[min(k, len(plan) - 1)]
        texts = [t for j in range(len(prompt_ids) // num_generations) for t in groups[j % len(groups)]]
        texts = [t.removeprefix(THINK_PREFILL) for t in texts]
        return [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts], None

    trainer._generate_single_turn = fake
    return calls


GOOD = format_answer("look", ToolCall(name="bash", arguments={"command": "ls"}))
OTHER = format_answer("read", ToolCall(name="bash", arguments={"command": "cat README.rst and more text"}))
BAD = "I will run ls."


def test_grpo_step_drops_a_flat_group_and_refills_it(tiny, steps, tmp_path):
    from srl_agent.train.srl import build_trainer

    cfg = _srl_config(tiny, steps, tmp_path, dynamic_sampling={"max_refills": 2})
    trainer, tok = build_trainer(cfg)
    # round 1: group 0 all alike (flat -> dropped), group 1 good vs bad (spread); refill: spread
    calls = _scripted_generation(trainer, tok, [[[BAD, BAD], [GOOD, BAD]], [[OTHER, BAD]]])
    trainer.train()
    assert calls == [4, 2]  # the refill generated exactly the one missing group
    assert trainer.dropped_groups_total == 1 and trainer.refills_total == 1
    assert trainer.state.global_step == 1
    # the reward saw whole answers (the prefill + what the model wrote): the refill's OTHER parses
    other, bad = trainer._last_rewards_per_func.flatten().tolist()
    assert other > -1.0 and bad == -1.0
    logged = trainer.state.log_history[0]
    assert logged["dynamic_sampling/dropped_groups"] == 1 and math.isfinite(logged["loss"])


def _lora_layers(model):
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def test_lora_merged_gives_the_same_outputs_and_restores_the_adapters_even_on_error(tiny):
    from peft import LoraConfig, get_peft_model

    from srl_agent.models import load_model
    from srl_agent.train.grpo import lora_merged

    torch.manual_seed(0)
    model = get_peft_model(
        load_model(tiny), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    )
    model.eval()
    layers = _lora_layers(model)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    ids = torch.randint(0, 100, (2, 12))
    with torch.no_grad():
        unmerged = model(input_ids=ids).logits
        with lora_merged(model):
            assert layers and all(layer.merged for layer in layers)
            merged = model(input_ids=ids).logits
            with lora_merged(model):  # already merged: left as it is
                pass
            assert all(layer.merged for layer in layers)
    torch.testing.assert_close(merged, unmerged, atol=1e-4, rtol=1e-4)
    assert not any(layer.merged for layer in layers)
    with pytest.raises(RuntimeError, match="boom"), lora_merged(model):
        raise RuntimeError("boom")
    assert not any(layer.merged for layer in layers)
    for name, p in model.named_parameters():
        if "lora_" not in name:
            torch.testing.assert_close(p.detach(), base[name], atol=1e-5, rtol=1e-5)


def test_grpo_with_lora_generates_through_merged_weights_and_trains_unmerged(tiny, steps, tmp_path):
    from srl_agent.train.srl import build_trainer

    cfg = _srl_config(
        tiny, steps, tmp_path, lora={"enabled": True, "r": 4}, dynamic_sampling={"enabled": False}
    )
    trainer, _tok = build_trainer(cfg)
    model = trainer.accelerator.unwrap_model(trainer.model)
    layers = _lora_layers(model)
    for layer in layers:  # B starts at 0, where merging changes nothing: make the adapters count
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.05)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    merged_while_generating = []
    generate = model.generate

    def spy(*args, **kwargs):
        merged_while_generating.append(all(layer.merged for layer in layers))
        return generate(*args, **kwargs)

    model.generate = spy
    trainer.train()
    assert merged_while_generating and all(merged_while_generating)
    assert not any(layer.merged for layer in layers)  # the update ran on the unmerged adapters
    for name, p in model.named_parameters():
        if "lora_" in name:
            continue
        torch.testing.assert_close(p.detach(), base[name], atol=1e-5, rtol=1e-5)
    assert trainer.state.global_step == 1


def test_grpo_trains_on_what_it_kept_when_refills_run_out(tiny, steps, tmp_path):
    from srl_agent.train.srl import build_trainer

    cfg = _srl_config(tiny, steps, tmp_path, dynamic_sampling={"max_refills": 0})
    trainer, tok = build_trainer(cfg)
    _scripted_generation(trainer, tok, [[[GOOD, GOOD], [GOOD, BAD]]])
    trainer.train()
    assert trainer.state.global_step == 1 and trainer.dropped_groups_total == 1


def test_refills_stop_once_the_token_budget_is_spent(tiny, steps, tmp_path):
    """Equal compute: an arm whose groups are all flat cannot keep sampling refills past its budget."""
    from srl_agent.train.grpo import DynamicSamplingStall
    from srl_agent.train.srl import build_trainer

    cfg = _srl_config(tiny, steps, tmp_path, dynamic_sampling={"max_refills": 4}, max_train_tokens=1)
    trainer, tok = build_trainer(cfg)
    calls = _scripted_generation(trainer, tok, [[[BAD, BAD]]])
    with pytest.raises(DynamicSamplingStall, match=r"token budget \(1\) was spent"):
        trainer.train()
    assert calls == [4] and trainer.refills_total == 0  # one round, no refill past the budget
    unbounded = _srl_config(tiny, steps, tmp_path / "b", dynamic_sampling={"max_refills": 2})
    trainer, tok = build_trainer(unbounded)
    calls = _scripted_generation(trainer, tok, [[[BAD, BAD]]])
    with pytest.raises(DynamicSamplingStall) as err:
        trainer.train()
    assert calls == [4, 4, 4] and "token budget" not in str(err.value)


def test_grpo_with_the_real_reward_stops_when_every_group_scores_minus_one(tiny, steps, tmp_path):
    from srl_agent.train.grpo import DynamicSamplingStall
    from srl_agent.train.srl import build_trainer

    cfg = _srl_config(tiny, steps, tmp_path, dynamic_sampling={"max_refills": 1})
    trainer, _ = build_trainer(cfg)  # real generation by a random model: never a well-formed answer
    with pytest.raises(DynamicSamplingStall) as err:
        trainer.train()
    msg = str(err.value)
    assert "every group scored -1" in msg and "srl train sft" in msg
    assert trainer.state.global_step == 0  # no loss-0 step was taken


def test_answer_overflow_filter_drops_rows_whose_answer_is_over_the_completion_budget(tiny, steps):
    from srl_agent.models import load_tokenizer
    from srl_agent.train.common import TrainError, load_train_rows

    tok = load_tokenizer(tiny)

    def length(row):
        return len(tok(row["completion"][-1]["content"], add_special_tokens=False)["input_ids"])

    every = load_train_rows(SFTTrainConfig(model=tiny, dataset=steps, max_completion_length=8), tok)
    lengths = sorted(length(r) for r in every)
    cut = lengths[len(lengths) // 2]
    kept = load_train_rows(
        SFTTrainConfig(model=tiny, dataset=steps, max_completion_length=cut, answer_overflow="filter"), tok
    )
    assert 0 < len(kept) < len(every) and all(length(r) <= cut for r in kept)
    assert len(kept) == sum(n <= cut for n in lengths)
    with pytest.raises(TrainError, match="max_completion_length=1"):
        load_train_rows(
            SFTTrainConfig(model=tiny, dataset=steps, max_completion_length=1, answer_overflow="filter"), tok
        )


# -- SFT, checkpoints, resume, LoRA ------------------------------------------------------------------


def test_sft_step_checkpoint_and_resume(tiny, steps, tmp_path):
    from srl_agent.policy import TransformersPolicy
    from srl_agent.train.common import TrainError
    from srl_agent.train.sft import run_sft

    cfg = SFTTrainConfig(
        model=tiny,
        dataset=steps,
        output_dir=tmp_path / "sft",
        max_steps=1,
        batch_size=2,
        save_steps=1,
        report_to=[],
    )
    with pytest.raises(TrainError, match="no checkpoint"):
        run_sft(cfg, resume=True)
    out = run_sft(cfg)
    assert (
        (out / "checkpoint-1").is_dir()
        and (out / "config.json").is_file()
        and (out / "sft_config.yaml").is_file()
    )
    cfg.max_steps = 2
    run_sft(cfg, resume=True)
    assert (out / "checkpoint-2").is_dir()
    state = (out / "checkpoint-2" / "trainer_state.json").read_text()
    assert '"global_step": 2' in state
    policy = TransformersPolicy.from_pretrained(str(out), device="cpu")  # the output is a policy
    assert len(policy.generate([[{"role": "user", "content": "hi"}]], max_new_tokens=4)) == 1


def test_sft_with_lora_saves_a_merged_model(tiny, steps, tmp_path):
    from srl_agent.train.sft import run_sft

    cfg = SFTTrainConfig(
        model=tiny,
        dataset=steps,
        output_dir=tmp_path / "lora",
        max_steps=1,
        batch_size=2,
        report_to=[],
        lora={"enabled": True, "r": 4, "alpha": 8},
    )
    out = run_sft(cfg)
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()


# -- RLVR plumbing ---------------------------------------------------------------------------------


def test_rlvr_step_with_a_fake_episode_runner(tiny, tmp_path):
    from srl_agent.train.rlvr import EpisodeResult, run_rlvr

    seen = []

    def runner(tasks, trainer):
        seen.append([t["instance_id"] for t in tasks])
        tok = trainer.processing_class
        out = []
        for i, t in enumerate(tasks):
            prompt = tok.apply_chat_template(t["prompt"], tokenize=False, add_generation_prompt=True)
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            answer = tok(GOOD, add_special_tokens=False)["input_ids"]
            obs = tok("Observation: ok", add_special_tokens=False)["input_ids"]
            out.append(
                EpisodeResult(
                    prompt_ids=ids,
                    completion_ids=answer + obs + answer,
                    env_mask=[1] * len(answer) + [0] * len(obs) + [1] * len(answer),
                    resolved=i % 2 == 0,
                )
            )
        return out

    tasks = [
        {"prompt": [{"role": "user", "content": f"fix bug {i}"}], "instance_id": f"t-{i}"} for i in range(4)
    ]
    cfg = RLVRTrainConfig(
        model=tiny,
        output_dir=tmp_path / "rlvr",
        max_steps=1,
        batch_size=2,
        num_generations=2,
        report_to=[],
        max_completion_length=64,
    )
    run_rlvr(cfg, runner=runner, tasks=tasks)
    assert len(seen) == 1 and len(seen[0]) == 4
    assert seen[0][0] == seen[0][1]  # each task repeated num_generations times, consecutively


# -- eval-steps --------------------------------------------------------------------------------------


def test_eval_steps_expert_scores_one_and_a_random_model_scores_minus_one(tiny, steps):
    from srl_agent.train.evaluate import evaluate_steps

    expert = evaluate_steps(EvalStepsConfig(dataset=steps, backend="expert"), progress=False)
    assert expert.n == 4 and expert.mean_reward == 1.0 and expert.format_error_rate == 0.0
    assert expert.per_tool[0].tool == "bash"
    rand = evaluate_steps(
        EvalStepsConfig(model=tiny, dataset=steps, max_new_tokens=8, limit=2), progress=False
    )
    assert rand.n == 2 and rand.mean_reward == -1.0 and rand.format_error_rate == 1.0


# -- vLLM generation inside GRPO -----------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_use_vllm_without_the_extra_says_how_to_install(tiny, steps, tmp_path):
    from srl_agent.train.common import TrainError
    from srl_agent.train.srl import build_trainer

    with pytest.raises(TrainError, match=r"srl-swe\[vllm\]"):
        build_trainer(_srl_config(tiny, steps, tmp_path, use_vllm=True))


@pytest.mark.vllm
def test_grpo_step_generates_through_vllm(tiny, steps, tmp_path):
    pytest.importorskip("vllm")
    from srl_agent.train.srl import build_trainer

    cfg = _srl_config(tiny, steps, tmp_path, use_vllm=True, device="cpu", dynamic_sampling={"enabled": False})
    trainer, _ = build_trainer(cfg)
    assert trainer.args.generation_kwargs == {"stop": ["</function>"], "include_stop_str_in_output": True}
    trainer.train()
    assert trainer.state.global_step == 1


@pytest.mark.vllm
def test_colocated_vllm_follows_the_trained_weights(tiny, steps, tmp_path):
    """The weight sync reaches vLLM, the tied LM head included: after an edit of the policy's weights
    (noise on the MLPs, the tied embedding/head scaled), vLLM's next-token log-probabilities match the
    policy's, and did not before the sync."""
    pytest.importorskip("vllm")
    import torch
    from vllm import SamplingParams

    from srl_agent.train.srl import build_trainer

    cfg = _srl_config(tiny, steps, tmp_path, use_vllm=True, device="cpu", dynamic_sampling={"enabled": False})
    trainer, tok = build_trainer(cfg)
    model, llm = trainer.model, trainer.vllm_generation.llm
    prompt = tok("def add(a, b):", add_special_tokens=False)["input_ids"]
    params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=3)

    def vllm_top() -> dict[int, float]:
        out = llm.generate([{"prompt_token_ids": prompt}], params, use_tqdm=False)[0].outputs[0]
        return {token: lp.logprob for token, lp in out.logprobs[0].items()}

    def policy_logprobs() -> torch.Tensor:
        with torch.no_grad():
            return model(torch.tensor([prompt])).logits[0, -1].float().log_softmax(-1)

    def agrees() -> bool:  # vLLM runs bf16 on CPU: agreement to a few hundredths
        ref = policy_logprobs()
        top = vllm_top()
        return max(top, key=top.get) == int(ref.argmax()) and all(
            abs(lp - float(ref[t])) < 0.03 for t, lp in top.items()
        )

    assert agrees()
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".mlp." in name:
                p.add_(torch.randn_like(p) * 0.5)
        model.get_output_embeddings().weight.mul_(3.0)  # tied: the input embedding too
    assert not agrees()  # not synced yet
    trainer.vllm_generation.sync_weights()
    assert agrees()


# -- memory: micro-batches -----------------------------------------------------------------------


def test_micro_batches_default_to_one_row_per_pass_on_cpu_and_must_divide_the_step():
    from srl_agent.train.common import TrainError, micro_batches

    assert micro_batches(8, None, "batch_size", "cpu") == (1, 8)
    assert micro_batches(8, None, "batch_size", "cuda") == (8, 1)  # GPUs: the whole batch, as before
    assert micro_batches(8, 4, "batch_size") == (4, 2)
    assert micro_batches(8, 16, "batch_size") == (8, 1)
    with pytest.raises(TrainError, match="micro_batch_size: 3 does not divide the 8 rows"):
        micro_batches(8, 3, "batch_size")


def _trained_weights(trainer) -> dict[str, torch.Tensor]:
    from transformers import set_seed

    trainer.args.optim = "sgd"  # Adam's first step is lr * sign(grad): it would magnify rounding noise
    set_seed(0)  # the same sampled completions for both trainers
    trainer.train()
    return {k: v.detach().clone() for k, v in trainer.model.named_parameters()}


@pytest.mark.parametrize("kind", ["sft", "grpo"])
def test_micro_batches_give_the_same_update_as_the_whole_batch(kind, tiny, steps, tmp_path):
    """Passes of one row accumulate to the gradient of the whole batch: the same weights after one step."""

    def build(micro, out):
        if kind == "sft":
            from srl_agent.train.sft import build_trainer

            cfg = SFTTrainConfig(
                model=tiny, dataset=steps, output_dir=out, max_steps=1, batch_size=4, lr=1.0,
                micro_batch_size=micro, report_to=[], save_steps=100, device="cpu",
            )  # fmt: skip
            return build_trainer(cfg)[0]
        from srl_agent.train.srl import build_trainer

        def longer_is_better(completions, **_):  # a reward with spread in every group
            return [float(len(c[-1]["content"])) for c in completions]

        cfg = _srl_config(
            tiny,
            steps,
            out,
            lr=1e-2,
            micro_batch_size=micro,
            device="cpu",
            dynamic_sampling={"enabled": False},
        )
        return build_trainer(cfg, reward_funcs=[longer_is_better])[0]

    whole = build(1000, tmp_path / "whole")  # a micro-batch above the step's 4 rows: one pass
    passes = build(1, tmp_path / "passes")
    assert (passes.args.per_device_train_batch_size, passes.args.gradient_accumulation_steps) == (1, 4)
    assert (whole.args.per_device_train_batch_size, whole.args.gradient_accumulation_steps) == (4, 1)
    a, b = _trained_weights(whole), _trained_weights(passes)
    start = build(1, tmp_path / "start").model
    moved = max((a[k] - p.detach()).abs().max().item() for k, p in start.named_parameters())
    assert moved > 1e-4  # the step did change the weights ...
    for k in a:  # ... and the same way in passes as in one batch
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
