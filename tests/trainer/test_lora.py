"""AlphaRL on a LoRA policy: rank-1 of the merged update from the factors, the swap into the base weight."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig
from transformers import TrainerCallback

from alpharl_trainer.errors import AlphaRLError
from alpharl_trainer.extrapolation import forecast, predict_weight, top_singular_factored
from alpharl_trainer.trainer import AlphaRLGRPOTrainer
from alpharl_trainer.trainer.lora import merged_update_rank1
from tests.trainer.harness import datasets, grpo_args, load, sevens_reward, test_model_dir

LORA = LoraConfig(
    r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]
)


class CaptureLora(TrainerCallback):
    """Factors and base weights just before the swap (W_K), and base weights right after it."""

    def __init__(self, trainer, window_end: int):
        self.trainer, self.window_end = trainer, window_end
        self.before, self.after = {}, {}

    def _params(self):
        return dict(self.trainer.model.named_parameters())

    def on_optimizer_step(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.window_end:
            params = self._params()
            for name, site in self.trainer.alpharl.recorder.lora.items():
                self.before[name] = tuple(
                    params[p].detach().clone() for p in (site.lora_b, site.lora_a, site.base)
                )

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.window_end:
            params = self._params()
            self.after = {
                n: params[s.base].detach().clone() for n, s in self.trainer.alpharl.recorder.lora.items()
            }


def test_lora_policy_is_extrapolated_on_its_merged_update(tmp_path):
    model, tok = load(test_model_dir())
    train, heldout = datasets()
    trainer = AlphaRLGRPOTrainer(
        model=model,
        reward_funcs=[sevens_reward],
        args=grpo_args(tmp_path, learning_rate=2e-2, alpharl_finetune_steps=0),
        train_dataset=train,
        eval_dataset=heldout,
        processing_class=tok,
        peft_config=LORA,
    )
    capture = CaptureLora(trainer, trainer.alpharl.window_end)
    trainer.add_callback(capture)
    trainer.train()

    callback = trainer.alpharl
    assert (
        callback.recorder.lora and sorted(callback.recorder.lora) == callback.names
    )  # only the adapted matrices
    assert all(
        n.endswith(("q_proj.weight", "v_proj.weight", "up_proj.weight", "down_proj.weight"))
        for n in callback.names
    )
    fcs = forecast(callback.trajectory, float(callback.swap.chosen))
    for name, (b, a, base) in capture.before.items():
        site = callback.recorder.lora[name]
        merged = site.scaling * (b @ a)  # B_0 = 0: the merged update is scaling * B_K A_K
        s_exact = torch.linalg.svdvals(merged)[0]
        torch.testing.assert_close(
            callback.trajectory.singular_values(name)[-1], s_exact, rtol=1e-4, atol=1e-7
        )
        expected = predict_weight(base, base, fcs[name], "rank1_replace", 1.0)
        torch.testing.assert_close(capture.after[name], expected, rtol=0, atol=0)
        assert torch.linalg.matrix_rank(capture.after[name] - base, atol=1e-6) == 1  # a rank-1 move


def test_factored_rank1_matches_the_dense_matrix_and_handles_a_nonzero_start():
    torch.manual_seed(0)
    b_t, a_t, b_0, a_0 = torch.randn(40, 3), torch.randn(3, 30), torch.randn(40, 3), torch.randn(3, 30)
    r = merged_update_rank1(b_t, a_t, b_0, a_0, 2.0, "w")
    dense = 2.0 * (b_t @ a_t - b_0 @ a_0)
    u, s, vh = torch.linalg.svd(dense)
    assert r.s == pytest.approx(float(s[0]), rel=1e-5) and r.fro == pytest.approx(
        float(dense.norm()), rel=1e-5
    )
    assert abs(float(r.u @ u[:, 0])) == pytest.approx(1.0, abs=1e-5)
    assert abs(float(r.v @ vh[0])) == pytest.approx(1.0, abs=1e-5)
    assert top_singular_factored(torch.zeros(5, 2), torch.randn(2, 4)).method == "zero"
    with pytest.raises(AlphaRLError, match="do not chain"):
        top_singular_factored(torch.randn(5, 2), torch.randn(3, 4))
