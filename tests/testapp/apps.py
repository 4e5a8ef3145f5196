from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"

    def ready(self):
        from celery.signals import task_prerun

        from tests.testapp import faults

        # Before each task, not at pool start: importing torch there outlasts Celery's
        # 4 s wait for a new pool process and gets it killed.
        task_prerun.connect(faults.install, weak=False)
