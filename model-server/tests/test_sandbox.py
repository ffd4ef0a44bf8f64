"""Tests of the sandbox launcher's decisions that need no root: where it hides, what it refuses."""

import importlib.util
import io
import os
import shutil
import sys
import tempfile
import unittest
import unittest.mock

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(os.path.dirname(HERE), "gantry_sandbox.py")

_spec = importlib.util.spec_from_file_location("gantry_sandbox", LAUNCHER)
gantry_sandbox = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gantry_sandbox)


class HidePointsTest(unittest.TestCase):
    def setUp(self):
        self.root = os.path.realpath(tempfile.mkdtemp(prefix="gantry-hide-"))
        os.chmod(self.root, 0o755)
        self.addCleanup(shutil.rmtree, self.root)

    def make(self, relative, mode):
        path = os.path.join(self.root, relative)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        return path

    def test_hides_the_home_and_the_outermost_ancestor_others_cannot_traverse(self):
        home = self.make("home", 0o700)
        private = self.make("private", 0o700)
        self.make("private/inner", 0o700)
        python = self.make("private/inner/python", 0o755)
        visible = self.make("public/code", 0o755)
        points = gantry_sandbox.hide_points([python, visible, os.path.join(home, "builds", "d1")], [home])
        self.assertEqual(sorted(points), sorted([home, private]))

    def test_keeps_only_the_outermost_of_nested_points(self):
        home = self.make("outer/home", 0o700)
        outer = self.make("outer", 0o700)
        os.chmod(home, 0o700)
        points = gantry_sandbox.hide_points([os.path.join(home, "builds", "d1")], [home, outer])
        self.assertEqual(points, [outer])


class RefusalsTest(unittest.TestCase):
    def run_main(self, argv):
        stderr = io.StringIO()
        with unittest.mock.patch.object(sys, "stderr", stderr):
            code = gantry_sandbox.main(argv)
        return code, stderr.getvalue()

    def test_refuses_to_run_model_code_as_root(self):
        if os.geteuid() != 0:
            code, err = self.run_main(["run", "--uid", "0", "--gid", "0", "--cwd", "/", "--", "/bin/true"])
            self.assertEqual(code, gantry_sandbox.EXIT_SANDBOX_FAILED)
            self.assertIn("must run as root", err)
            return
        code, err = self.run_main(["run", "--uid", "0", "--gid", "0", "--cwd", "/", "--", "/bin/true"])
        self.assertEqual(code, gantry_sandbox.EXIT_SANDBOX_FAILED)
        self.assertIn("refusing to run model code as uid 0", err)

    def test_refuses_an_empty_command(self):
        code, err = self.run_main(["run", "--uid", "2000000001", "--gid", "2000000001", "--cwd", "/"])
        self.assertEqual(code, gantry_sandbox.EXIT_SANDBOX_FAILED)
        self.assertIn("no command to run", err)


if __name__ == "__main__":
    unittest.main()
