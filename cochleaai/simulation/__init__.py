"""Cochlear-implant CT from X-ray physics (thesis chapter 2, section 2.2).

* :mod:`.arrays`: the electrode-array catalogue; :mod:`.electrodes`: insertion along the scala tympani;
* :mod:`.physics`: stored spectra and attenuation tables, HU -> materials;
* :mod:`.projector`: fan-beam projector and FBP of a ROI inside an analytic head;
* :mod:`.chords`: exact metal path lengths per detector sub-ray;
* :mod:`.ct`: polychromatic scan with scatter and noise, post-op simulation, and the 15-mm
  cube around the cochlea that it is run on (:func:`~.ct.simulation_roi`);
* :mod:`.scanner_draw` and :mod:`.pairs`: scanner settings drawn per pair and the MARGAN
  training sets.

Import from the submodules: the package itself loads nothing, so that :mod:`.arrays`
imports without torch.
"""
