"""A stand-in for Slicer's Sample Data module (``import SampleData``), as far as an extension
registers its data sets there (Modules/Scripted/SampleData/SampleData.py, Slicer 5.8 to 5.12).

It builds and refuses sources as Slicer's does, so that a registration Slicer would refuse
fails here too:

* ``SampleDataSource(...)`` has Slicer's keywords. ``uris`` given as one string makes every
  per-file field a one-item list; given as a list or tuple, ``nodeNames``, ``loadFiles``,
  ``checksums`` and ``loadFileTypes`` left out become one ``None`` per URI, but ``fileNames``
  must be given. Then every per-file field must have a length (``TypeError`` when ``uris`` or
  ``fileNames`` is missing: Slicer takes ``len()`` of them), and all the same length
  (``ValueError``). ``loadFileType`` (deprecated) and ``loadFileTypes`` together: ``ValueError``.
* ``SampleDataLogic.registerCustomSampleDataSource(...)`` builds the source with those rules
  and adds it to ``slicer.modules.sampleDataSources[category]``, once (an equal source, by its
  text, is not added again).
* :func:`click` does what the entry's button does: the custom downloader is called with the
  source; a source without one is downloaded (here: its URIs are recorded).
"""
from __future__ import annotations

import sys

#: The per-file fields of a source, which must have one item per downloaded file.
PER_FILE = ("uris", "fileNames", "nodeNames", "loadFiles", "loadFileTypes", "checksums")


def _one_file_type(loadFileType, loadFileTypes):
    if loadFileType is not None and loadFileTypes is not None:
        raise ValueError("loadFileType and loadFileTypes cannot be specified at the same time")
    return loadFileTypes if loadFileTypes is not None else loadFileType


class SampleDataSource:
    def __init__(self, sampleName=None, sampleDescription=None, uris=None, fileNames=None, nodeNames=None,
                 checksums=None, loadFiles=None, customDownloader=None, thumbnailFileName=None,
                 loadFileTypes=None, loadFileProperties=None, loadFileType=None):
        loadFileTypes = _one_file_type(loadFileType, loadFileTypes)
        if isinstance(uris, str):
            uris, fileNames, nodeNames = [uris], [fileNames], [nodeNames]
            loadFiles, loadFileTypes, checksums = [loadFiles], [loadFileTypes], [checksums]
        elif isinstance(uris, (list, tuple)):
            def each(value):
                return [value] * len(uris)
            loadFileTypes = each(loadFileTypes) if loadFileTypes is None or isinstance(loadFileTypes, str) \
                else loadFileTypes
            nodeNames = each(None) if nodeNames is None else nodeNames
            loadFiles = each(None) if loadFiles is None else loadFiles
            checksums = each(None) if checksums is None else checksums
        self.sampleName = sampleName
        self.sampleDescription = sampleName if sampleDescription is None else sampleDescription
        self.uris, self.fileNames, self.nodeNames = uris, fileNames, nodeNames
        self.loadFiles, self.loadFileTypes, self.checksums = loadFiles, loadFileTypes, checksums
        self.customDownloader = customDownloader
        self.thumbnailFileName = thumbnailFileName
        self.loadFileProperties = {} if loadFileProperties is None else loadFileProperties
        lengths = {}
        for field in PER_FILE:
            value = getattr(self, field)
            if not hasattr(value, "__len__"):
                raise TypeError(f"{field} of sample data source {sampleName!r} has no length: {value!r}")
            lengths[field] = len(value)
        if len(set(lengths.values())) > 1:
            raise ValueError(f"All fields of sample data source must have the same length: {lengths}")

    def __str__(self):
        files = [" ".join(f"{field}={getattr(self, field)[i]!r}" for field in PER_FILE)
                 for i in range(len(self.uris))]
        return "\n".join([f"sampleName={self.sampleName!r} sampleDescription={self.sampleDescription!r}",
                          f"thumbnailFileName={self.thumbnailFileName!r} loadFileProperties={self.loadFileProperties!r}",
                          f"customDownloader={self.customDownloader!r}", *files])

    def __eq__(self, other):
        return str(self) == str(other)


def _sources():
    modules = sys.modules["slicer"].modules
    if not hasattr(modules, "sampleDataSources"):
        modules.sampleDataSources = {}
    return modules.sampleDataSources


class SampleDataLogic:
    downloads = []      # the URIs of the sources "downloaded" by click()

    @staticmethod
    def registerCustomSampleDataSource(category="Custom", sampleName=None, uris=None, fileNames=None,
                                       nodeNames=None, customDownloader=None, thumbnailFileName=None,
                                       loadFileTypes=None, loadFiles=None, loadFileProperties=None,
                                       checksums=None, loadFileType=None):
        source = SampleDataSource(
            sampleName=sampleName, uris=uris, fileNames=fileNames, nodeNames=nodeNames,
            thumbnailFileName=thumbnailFileName, loadFileTypes=_one_file_type(loadFileType, loadFileTypes),
            loadFiles=loadFiles, loadFileProperties=loadFileProperties, checksums=checksums,
            customDownloader=customDownloader)
        registered = _sources().setdefault(category, [])
        if source not in registered:
            registered.append(source)


def click(source):
    """What the source's button in the Sample Data module does."""
    if source.customDownloader is not None:
        return source.customDownloader(source)
    SampleDataLogic.downloads.append(list(source.uris))
    return None
