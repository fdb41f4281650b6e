"""The object cue: moving regions of the flow, judged against the normal objects seen at the same place.

``regions`` finds a frame's objects and their attributes, ``density`` scores them against the training
footage's objects, ``cue`` gives each frame its worst object's score. The calibration (fitted by
``postprocess``, applied by ``decide``) puts that score in the patch score's units and the frame score is the
larger of the two.
"""

from ognet_video.objects.cue import ObjectCue, normal_objects
from ognet_video.objects.density import ObjectDensity
from ognet_video.objects.regions import FEATURES, Objects, find_objects

__all__ = ["FEATURES", "ObjectCue", "ObjectDensity", "Objects", "find_objects", "normal_objects"]
