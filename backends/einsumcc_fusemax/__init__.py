"""The FuseMax evaluation (MICRO 2024) as an experiment on the einsumcc simulator.

``einsumcc reproduce fusemax`` runs every (model, sequence length, design) point of the paper's
attention evaluation, writes CSVs in the artifact's format, draws Figures 6-9 and summarises
the headline ratios.  Models, sequence lengths and FLAT's searched dataflows live here; cycles,
traffic and energy come from the simulator (``einsumcc_sim``).
"""
