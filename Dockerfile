# The broker as one image: daphne serving the ASGI app. Configure it with environment
# variables (.env.example); SECRET_KEY is required, DATABASE_URL and REDIS_URL for production.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BROKER_VAR_DIR=/data
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --create-home broker && mkdir -p /data && chown broker /data
USER broker
EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py broker_bootstrap && exec daphne -b 0.0.0.0 -p 8000 broker_site.asgi:application"]
