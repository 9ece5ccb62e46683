"""Pre-operative planning of a cochlear implant: the electrode arrays on offer
(:mod:`.catalogue`), the published maps and formulas a plan rests on (:mod:`.literature`),
and the insertion of each array in a fitted cochlea."""
