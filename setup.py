"""Build hook: ship the workbook notebooks inside the wheel.

The numbered notebooks stay in the top-level ``notebooks/`` folder (users open them there);
``build_py`` copies ``notebooks/[0-9][0-9]_*.ipynb`` into ``vlmkit/_notebooks/`` of the build,
so an installed vlmkit finds them (``vlmkit.rundir.notebook_dir``) and ``vlmkit run`` works
outside a checkout.  Editable installs skip the copy: they run from the checkout.
Everything else about the package is in ``pyproject.toml``.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class build_py_with_notebooks(build_py):  # noqa: N801 (setuptools command naming)
    """``build_py`` plus the copy of the numbered notebooks into ``vlmkit/_notebooks``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        sources = sorted((HERE / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        if not sources:
            raise SystemExit(f"{HERE / 'notebooks'}: no numbered notebooks to ship (expected NN_name.ipynb)")
        target = Path(self.build_lib) / "vlmkit" / "_notebooks"
        self.mkpath(str(target))
        for nb in sources:
            self.copy_file(str(nb), str(target / nb.name))


setup(cmdclass={"build_py": build_py_with_notebooks})
