"""Result nodes of each method, built in an MRML scene."""

#: Node attribute of a result: "yes" when quality control flags it for review, else "no".
SUSPECT_ATTRIBUTE = "CochleaAI.QualitySuspect"
