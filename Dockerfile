# The broker as one image: uvicorn serving the ASGI app, as README "Running it in production" runs it. Configure it with environment
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
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py broker_bootstrap && exec uvicorn broker_site.asgi:application --host 0.0.0.0 --port 8000 --loop uvloop --http httptools --ws websockets-sansio --lifespan on --no-access-log"]
