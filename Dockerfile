# roomcast server image. Not built in CI (no Docker engine runs on the CI machines); kept correct by reading.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY server ./server
COPY channels ./channels
COPY migrations ./migrations
RUN pip install . \
 && useradd --system --create-home --home-dir /home/roomcast roomcast \
 && mkdir -p /data && chown roomcast /data

USER roomcast
ENV ROOMCAST_DATA_DIR=/data
EXPOSE 8000
# DATABASE_URL and REDIS_URL must be set in production; without them the embedded services start.
CMD ["roomcast", "serve", "--host", "0.0.0.0", "--port", "8000"]
