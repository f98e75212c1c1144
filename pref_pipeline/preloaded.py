"""Imported last by a forkserver's preload (``preload.step_preload``): freezes the heap the preload built.

Python's advice for processes forked without exec (``gc.freeze``): freeze in the parent right before forking, so
the children's collections never walk (nor copy-on-write) the preloaded objects. It also spares the forkserver's
own exit the final collection over them: a forkserver that has imported GX and Dagster took ~1.3 s to exit, and
whoever reads the run's output through a pipe waits for that (the forkserver inherits stdout and stderr).
"""

from pref_pipeline.runner import freeze_heap

freeze_heap()
