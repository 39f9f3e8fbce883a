"""Training: SFT (baseline and warm-up), SRL (GRPO with the step reward) and RLVR (outcome reward).

Each command has one typed config (`srl_agent.train.config`). Heavy libraries load inside functions.
"""

from pathlib import Path

ACCELERATE_CONFIGS = Path(__file__).parent / "accelerate"
"""``accelerate launch --config_file`` files shipped with the package: multi_gpu.yaml, multi_node.yaml."""
