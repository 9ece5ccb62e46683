"""Electrode contacts in post-operative CT: detection and numbering (:mod:`.detect`), contacts
of fine-pitch arrays set at their pitch (:mod:`.comb`), and the learned sub-voxel refiner
(:mod:`.refiner`).
"""
