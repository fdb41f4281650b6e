"""Training: ``train`` (phase one, phase two per ensemble member, then the calibration), ``train_data`` (what
training reads: clips, held-out footage, moving patches), ``train_state`` (what ``last.safetensors`` holds and its
check on resume), ``distributed`` (several processes or GPUs under torchrun).

The folder is ``training`` so that it does not shadow the ``train`` function or the ``train`` command.
"""
