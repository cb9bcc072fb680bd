# Production image: gunicorn serving tinko.wsgi; the same image runs the
# Dramatiq worker (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TINKO_DOTENV=""

WORKDIR /app

# A fixed uid/gid: Kubernetes' runAsNonRoot can only check a numeric user
# (deploy/kubernetes runs the pods as 10001).
RUN groupadd --system --gid 10001 tinko \
    && useradd --system --uid 10001 --gid tinko --home-dir /app --no-create-home --shell /usr/sbin/nologin tinko

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Production settings refuse to load without a real-looking SECRET_KEY and
# ALLOWED_HOSTS; collectstatic needs neither, so give it throwaway ones that
# live only for this command (a fresh random key, never stored in the image).
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    TINKO_ENCRYPTION_KEYS="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    ALLOWED_HOSTS=build.invalid \
    python manage.py collectstatic --noinput \
    && chown -R tinko:tinko /app/var

USER 10001:10001

EXPOSE 8000

CMD ["gunicorn", "--config", "gunicorn.conf.py", "tinko.wsgi:application"]
