"""What the explorer computes from the models: a reading of a text (entropy per byte, then any scheme's
patches: `reading`), bits per byte (`bpb`) and the cost of generation in FLOPs (`cost`)."""
