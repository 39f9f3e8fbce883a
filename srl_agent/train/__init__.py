"""Training: SFT (baseline and warm-up), SRL (GRPO with the step reward) and RLVR (outcome reward).

Each command has one typed config (`srl_agent.train.config`). Heavy libraries load inside functions.
"""
