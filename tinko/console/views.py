from django.shortcuts import render

from tinko.tenancy import role_required


@role_required()
def home(request):
    return render(request, "console/home.html")
