% Segment one frame with a running `unet-edge serve` (MATLAB R2016b+, no toolboxes).
%   mask = segment_client(uint16(imread('frame.tif')));   % uint8 class indices, H x W
% Off 127.0.0.1 add 'HeaderFields', {'Authorization', ['Bearer ' token]} to weboptions.
function mask = segment_client(frame, base)
if nargin < 2
    base = 'http://127.0.0.1:8765';
end
[h, w] = size(frame);
% MATLAB stores columns first; the server reads rows first (C order): send the transpose.
% typecast keeps the machine's byte order, little-endian on every MATLAB platform.
body = typecast(reshape(uint16(frame).', 1, []), 'uint8');
url = sprintf('%s/segment?shape=%d,%d&dtype=uint16', base, h, w);
opts = weboptions('MediaType', 'application/octet-stream', 'ContentType', 'binary', ...
                  'Timeout', 60);
reply = webwrite(url, body, opts);
mask = reshape(uint8(reply), w, h).';
end
