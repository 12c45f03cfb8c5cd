"""Objects by location, loaded once: what propose, verify and fix read.

A detection names a file, a document (and list item) and the application it
was found in; the store loads each file once and rebuilds an application from
its key the way detect formed it (a folder's own files, a chart, or a file).
"""

from __future__ import annotations

import gc
import os

from .context import Application, ContextMode, application_key
from .helm import is_chart
from .kustomize import kustomization_file
from .loader import DEFAULT_MAX_FILE_BYTES, LoadResult, iter_manifest_files, load_file
from .objects import K8sObject

# An application this large is frozen out of the collector's full passes once
# loaded (see ``store_for_application``): verifying the-stack's 12,000 findings
# ran 30 full passes over its 4,000 parsed files, 20% of the stage's time.
FREEZE_OBJECTS = 1000


class ObjectStore:
    def __init__(self, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, freeze_large: bool = False):
        self.max_file_bytes = max_file_bytes
        self.freeze_large = freeze_large
        self._files: dict[str, LoadResult] = {}
        self._apps: dict[str, Application] = {}
        self._built: dict[tuple, K8sObject] = {}  # objects a kustomization builds, at their origin
        self._located: dict[str, dict[tuple, K8sObject]] = {}  # file -> (document, list item) -> object
        self._charts: dict[str, str | None] = {}  # folder -> the chart it is in

    def file(self, path: str) -> LoadResult:
        if path not in self._files:
            self._files[path] = load_file(path, self.max_file_bytes)
        return self._files[path]

    @classmethod
    def of_application(cls, app: Application) -> ObjectStore:
        """A store that serves one application already loaded (in a worker) instead of reading it again."""
        store = cls()
        for obj in app.objects:
            store._files.setdefault(obj.path, LoadResult(files=[obj.path])).objects.append(obj)
        store._built = {o.location: o for o in app.objects if o.built_by is not None}
        store._apps[app.key] = app
        return store

    def loaded_objects(self) -> list[K8sObject]:
        return [o for loaded in self._files.values() for o in loaded.objects]

    def object_of(self, finding) -> K8sObject | None:
        """The object a detection is about, if it is still where detect found it."""
        self.application_of(finding)  # a kustomization's objects are the built ones
        obj = self.object(finding.manifest_path, finding.document_index, finding.list_index)
        ref = finding.object
        if obj is None or (obj.kind, obj.name, obj.namespace) != (ref.kind, ref.name, ref.namespace):
            return None
        return obj

    def application_of(self, finding) -> Application:
        return self.application(finding.application, finding.manifest_path)

    def object(self, path: str, document_index: int, list_index: int | None = None) -> K8sObject | None:
        if (path, document_index, list_index) not in self._built:
            chart = self._chart_of(path)
            if chart is not None:  # a template file: its objects are the ones the chart renders
                self.application(chart, path)
        if (path, document_index, list_index) in self._built:
            return self._built[(path, document_index, list_index)]
        located = self._located.get(path)
        if located is None:  # indexed once per file: a 10,000-item List is looked up 10,000 times
            located = self._located[path] = {}
            for obj in self.file(path).objects:
                located.setdefault((obj.document_index, obj.list_index), obj)
        return located.get((document_index, list_index))

    def _chart_of(self, path: str) -> str | None:
        """The outermost chart folder around ``path`` (a subchart renders with its parent), if any."""
        folder = os.path.dirname(path)
        if folder not in self._charts:
            parent = os.path.dirname(folder)
            outer = self._chart_of(folder) if parent != folder and folder else None
            self._charts[folder] = outer or (folder if folder and is_chart(folder) else None)
        return self._charts[folder]

    def application(self, key: str | None, path: str) -> Application:
        """The application ``key`` (as detect recorded it); the file alone if unknown."""
        key = key or path
        if key not in self._apps:
            objects = [o for f in self._files_of(key) for o in self.file(f).objects]
            self._built |= {o.location: o for o in objects if o.built_by is not None}
            self._apps[key] = Application(key, objects)
            if self.freeze_large and len(objects) > FREEZE_OBJECTS:
                gc.freeze()  # what is loaded now is kept until the store goes: the collector need not walk it again
        return self._apps[key]

    def _files_of(self, key: str) -> list[str]:
        if not os.path.isdir(key) or kustomization_file(key) or is_chart(key):
            return [key]  # a file, a kustomization (built as a whole) or a chart (rendered as a whole)
        chart_roots: dict[str, str | None] = {}
        names = sorted(os.listdir(key))
        files = [os.path.join(key, n) for n in names if os.path.isfile(os.path.join(key, n))]
        return [f for f, problem in iter_manifest_files(files) if not problem and application_key(f, ContextMode.DIR, chart_roots) == key]


_last: tuple[tuple[str, str], ObjectStore] | None = None  # per process: (pass, application) worked on last, and its store


def store_for_application(key: str, pass_id: str) -> ObjectStore:
    """A store for one application's records in one pass over the input (a
    stage's run), kept for the next piece of the same application in this
    process: the pieces of a large application that a worker takes one after
    another parse its files once, not once a piece. Only the last application
    is kept, so memory stays that of one application; another pass (files may
    have changed since) never sees it."""
    global _last
    if _last is None or _last[0] != (pass_id, key):
        gc.unfreeze()  # the last application's objects go back to the collector, with the store
        _last = ((pass_id, key), ObjectStore(freeze_large=True))
    return _last[1]


def store_for_findings(findings, pass_id: str) -> ObjectStore:
    """The store for a batch of one pass's findings: one application's share the
    process's store for it (``store_for_application``); several get a new one."""
    keys = {f.application_key for f in findings}
    return store_for_application(keys.pop(), pass_id) if len(keys) == 1 else ObjectStore()
