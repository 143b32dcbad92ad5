/**
 * The photo being sent and how it went, kept above the screens (in AppShell) so that it survives a
 * switch of tabs: a result or an error that arrives while another tab is shown is handed to
 * `onResult` / `onFailure`, and the error stays until the next photo is sent or it is dismissed.
 */
import { useCallback, useRef, useState } from 'react';

import { describeError } from '../api/errors';
import type { ErrorAction } from './errorAction';
import { errorAction } from './errorAction';
import type { Sent } from './sendPhoto';
import { sendPhoto } from './sendPhoto';

export type UploadStage = 'idle' | 'preparing' | 'uploading';

export interface UploadFailure {
  message: string;
  /** what the person can do about it (see errorAction.ts) */
  action: ErrorAction;
}

export interface Upload {
  stage: UploadStage;
  failure: UploadFailure | null;
  /** prepare and send the photo at `uri` */
  start: (uri: string) => void;
  /** send the last photo again */
  retry: () => void;
  /** stop preparing or sending; nothing is reported */
  cancel: () => void;
  /** forget the failure shown */
  dismiss: () => void;
}

export interface UploadHandlers {
  onResult: (sent: Sent) => void;
  onFailure?: (failure: UploadFailure) => void;
}

export function useUpload(serviceUrl: string, handlers: UploadHandlers): Upload {
  const [stage, setStage] = useState<UploadStage>('idle');
  const [failure, setFailure] = useState<UploadFailure | null>(null);
  const running = useRef<AbortController | null>(null);
  const lastUri = useRef<string | null>(null);
  const latest = useRef({ serviceUrl, handlers });
  latest.current = { serviceUrl, handlers };

  const start = useCallback((uri: string) => {
    running.current?.abort();
    const controller = new AbortController();
    running.current = controller;
    lastUri.current = uri;
    setFailure(null);
    setStage('preparing');
    const mine = () => running.current === controller && !controller.signal.aborted;
    const onUploading = () => mine() && setStage('uploading');
    sendPhoto(uri, latest.current.serviceUrl, { signal: controller.signal, onUploading }).then(
      (sent) => {
        if (!mine()) return;
        running.current = null;
        setStage('idle');
        latest.current.handlers.onResult(sent);
      },
      (error: unknown) => {
        if (!mine()) return;
        running.current = null;
        const failed = { message: describeError(error), action: errorAction(error) };
        setStage('idle');
        setFailure(failed);
        latest.current.handlers.onFailure?.(failed);
      },
    );
  }, []);

  const retry = useCallback(() => {
    if (lastUri.current) start(lastUri.current);
  }, [start]);

  const cancel = useCallback(() => {
    running.current?.abort();
    running.current = null;
    setStage('idle');
  }, []);

  const dismiss = useCallback(() => setFailure(null), []);

  return { stage, failure, start, retry, cancel, dismiss };
}
