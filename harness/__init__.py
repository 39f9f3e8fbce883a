"""Everything that runs: Docker bootstrap, images, sandboxes, in-sandbox tools, replay, scoring, grading."""
