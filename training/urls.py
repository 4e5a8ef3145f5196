from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("new/", views.new_job, name="new"),
    path("estimate/", views.estimate, name="estimate"),
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/compare/", views.compare, name="compare"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="cancel"),
    path("jobs/<int:job_id>/points/", views.job_points, name="points"),
]
