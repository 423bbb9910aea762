"""Probe ``generator:gan`` settings for mode collapse on the ``generator-comparison`` data (500 real
scikit-learn digits): ``benchmarks/generator_probe.py`` with the GAN's defaults and its own log and block.

    nice -n 10 python benchmarks/gan_probe.py --tag old '{"train_steps": 800, "width": 16, "disc_width": 16}'
    python benchmarks/gan_probe.py --table      # the markdown table of the log
    python benchmarks/gan_probe.py --write      # ... spliced into docs/recipes.md (claims:gan-probe)
"""
from __future__ import annotations

from generator_probe import main

if __name__ == "__main__":
    main(generator="gan", dataset="digits", train_size=500, log="runs/gan_probe.jsonl", block="gan-probe",
         command="gan_probe.py")
